import { LlmError, streamChat, type LlmProviderConfig } from './llm-client.ts';

export interface ConnectionTestResult {
  ok: boolean;
  latency_ms: number;
  message: string;
  /** Media providers: `ok` or a MediaErrorCode (`auth`, `rate_limited` …) for clients that act on it. */
  code?: string;
}

/** A test should answer while the admin waits, whatever the provider's own (generous) timeout. */
const MAX_TEST_TIMEOUT_S = 20;

/**
 * The "test connection" button: one tiny streamed request, stopped at the first token, and what
 * went wrong said in words an admin can act on.
 */
export async function testConnection(provider: LlmProviderConfig): Promise<ConnectionTestResult> {
  const started = performance.now();
  const timeout_s = Math.min(provider.timeout_s, MAX_TEST_TIMEOUT_S);
  const latency = () => Math.round(performance.now() - started);
  const stream = streamChat({
    provider: { ...provider, timeout_s },
    messages: [{ role: 'user', content: 'Reply with one word: ok' }],
    max_tokens: 5,
    // Say what is wrong now; retrying would only make the admin wait for the same answer.
    maxRetries: 0,
  });
  try {
    // The first delta (or a complete answer) proves the whole path; the rest is not needed.
    const first = await stream.next();
    const ms = latency();
    return { ok: true, latency_ms: ms, message: first.done ? `Connected: model "${provider.model_name}" answered in ${ms} ms.` : `Connected: model "${provider.model_name}" started answering in ${ms} ms.` };
  } catch (e) {
    return { ok: false, latency_ms: latency(), message: explain(e, provider, timeout_s) };
  } finally {
    // Closes the upstream request if it is still streaming.
    await stream.return(undefined as never).catch(() => {});
  }
}

function explain(e: unknown, p: LlmProviderConfig, timeout_s: number): string {
  if (!(e instanceof LlmError)) return 'The test failed unexpectedly; see the server log.';
  const host = hostOf(p.api_url);
  switch (e.code) {
    case 'auth':
      return e.status === 401
        ? 'The API key was rejected (HTTP 401). Check that the key is correct, complete and still active for this provider.'
        : `The key was refused: ${e.message}`;
    case 'not_found':
      return e.upstreamCode === 'model_not_found'
        ? `The provider does not offer the model "${p.model_name}" (HTTP 404). Check the model name; the provider's model list shows the exact ids.`
        : `Nothing answers at ${host}'s chat completions path (HTTP ${e.status ?? 404}). Check the API URL: for OpenAI-compatible servers it usually ends in /v1, e.g. https://api.openai.com/v1.`;
    case 'network':
      if (e.upstreamCode === 'ENOTFOUND' || e.upstreamCode === 'EAI_AGAIN') {
        return `The host ${host} could not be found (DNS). Check the API URL for typos.`;
      }
      if (e.upstreamCode === 'ECONNREFUSED') {
        return `Nothing is listening at ${host} (connection refused). Check the host and port in the API URL and that the server is running.`;
      }
      return `${host} could not be reached: ${e.message} Check the API URL and the network.`;
    case 'timeout':
      return `No answer from ${host} within ${timeout_s} s. The server may be overloaded or unreachable from here (a firewall or proxy); try again or raise the timeout.`;
    case 'rate_limited':
      return e.retryable
        ? `The key works, but the provider is rate limiting it (HTTP 429)${e.retryAfterMs !== undefined ? `; retry in ${Math.ceil(e.retryAfterMs / 1000)} s` : ''}. Lower the request rate or raise the key's limits.`
        : `The key works, but its quota is used up (HTTP 429). Add credit or raise the quota with the provider.`;
    case 'bad_response': {
      if (e.status !== undefined) return `The provider refused the test request: ${e.message}`;
      const what = /HTML/.test(e.message) ? 'it sent a web page' : /JSON/.test(e.message) ? 'it sent invalid JSON' : 'it did not send an event stream';
      return `${host} answered, but not like an OpenAI-compatible API (${what}). Check the API URL: it should point at the API itself, usually ending in /v1.`;
    }
    case 'upstream_5xx':
      return `The provider had a server error (HTTP ${e.status}). Its service may be down; try again later.`;
    case 'stream_error':
    case 'truncated':
      return `The provider started answering, then failed: ${e.message}`;
    case 'cancelled':
      return 'The test was cancelled.';
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'the provider';
  }
}
