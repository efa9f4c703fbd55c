import { LlmError, streamChat, type LlmProviderConfig } from './llm-client.ts';

export interface ConnectionTestResult {
  ok: boolean;
  latency_ms: number;
  /** In English, for API clients; the web app words `code` with `params` in the user's language. */
  message: string;
  code: string;
  params: Record<string, string | number>;
}

type Said = Pick<ConnectionTestResult, 'code' | 'params' | 'message'>;
const said = (code: string, params: Said['params'], message: string): Said => ({ code, params, message });

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
  const stop = new AbortController();
  let firstMs: number | undefined;
  try {
    // The first delta (or a complete answer) proves the whole path; the rest is not needed.
    await streamChat(
      {
        provider: { ...provider, timeout_s },
        messages: [{ role: 'user', content: 'Reply with one word: ok' }],
        max_tokens: 5,
        // Say what is wrong now; retrying would only make the admin wait for the same answer.
        maxRetries: 0,
        signal: stop.signal,
      },
      () => {
        firstMs ??= latency();
        stop.abort();
      },
    );
  } catch (e) {
    // After the first delta the error is our own stop (or comes too late to matter): the path works.
    if (firstMs === undefined) return { ok: false, latency_ms: latency(), ...explain(e, provider, timeout_s) };
  }
  const model = provider.model_name;
  const ms = firstMs ?? latency();
  const how = firstMs === undefined ? 'answered' : 'started answering';
  return { ok: true, latency_ms: ms, ...said('connected', { model, ms }, `Connected: model "${model}" ${how} in ${ms} ms.`) };
}

function explain(e: unknown, p: LlmProviderConfig, timeout_s: number): Said {
  if (!(e instanceof LlmError)) return said('unexpected', {}, 'The test failed unexpectedly; see the server log.');
  const host = hostOf(p.api_url);
  // `detail` is the vendor's own words, shown quoted.
  switch (e.code) {
    case 'auth':
      return e.status === 401
        ? said('key_rejected', {}, 'The API key was rejected (HTTP 401). Check that the key is correct, complete and still active for this provider.')
        : said('key_refused', { detail: e.message }, `The key was refused: ${e.message}`);
    case 'not_found':
      return e.upstreamCode === 'model_not_found'
        ? said('model_not_found', { model: p.model_name }, `The provider does not offer the model "${p.model_name}" (HTTP 404). Check the model name; the provider's model list shows the exact ids.`)
        : said('wrong_path', { host, status: e.status ?? 404 }, `Nothing answers at ${host}'s chat completions path (HTTP ${e.status ?? 404}). Check the API URL: for OpenAI-compatible servers it usually ends in /v1, e.g. https://api.openai.com/v1.`);
    case 'network':
      if (e.upstreamCode === 'ENOTFOUND' || e.upstreamCode === 'EAI_AGAIN') {
        return said('host_not_found', { host }, `The host ${host} could not be found (DNS). Check the API URL for typos.`);
      }
      if (e.upstreamCode === 'ECONNREFUSED') {
        return said('connection_refused', { host }, `Nothing is listening at ${host} (connection refused). Check the host and port in the API URL and that the server is running.`);
      }
      return said('unreachable', { host, detail: e.message }, `${host} could not be reached: ${e.message} Check the API URL and the network.`);
    case 'timeout':
      return said('timeout', { host, seconds: timeout_s }, `No answer from ${host} within ${timeout_s} s. The server may be overloaded or unreachable from here (a firewall or proxy); try again or raise the timeout.`);
    case 'rate_limited':
      if (!e.retryable) return said('quota_exhausted', {}, `The key works, but its quota is used up (HTTP 429). Add credit or raise the quota with the provider.`);
      return e.retryAfterMs !== undefined
        ? said('rate_limited', { seconds: Math.ceil(e.retryAfterMs / 1000) }, `The key works, but the provider is rate limiting it (HTTP 429); retry in ${Math.ceil(e.retryAfterMs / 1000)} s. Lower the request rate or raise the key's limits.`)
        : said('rate_limited', {}, `The key works, but the provider is rate limiting it (HTTP 429). Lower the request rate or raise the key's limits.`);
    case 'bad_response': {
      if (e.status !== undefined) return said('request_refused', { detail: e.message }, `The provider refused the test request: ${e.message}`);
      const what = /HTML/.test(e.message) ? 'html' : /JSON/.test(e.message) ? 'json' : 'not_stream';
      const words = { html: 'it sent a web page', json: 'it sent invalid JSON', not_stream: 'it did not send an event stream' }[what];
      return said('not_openai', { host, what }, `${host} answered, but not like an OpenAI-compatible API (${words}). Check the API URL: it should point at the API itself, usually ending in /v1.`);
    }
    case 'upstream_5xx':
      return said('server_error', { status: e.status ?? 500 }, `The provider had a server error (HTTP ${e.status}). Its service may be down; try again later.`);
    case 'stream_error':
    case 'truncated':
      return said('failed_mid_answer', { detail: e.message }, `The provider started answering, then failed: ${e.message}`);
    case 'cancelled':
      return said('cancelled', {}, 'The test was cancelled.');
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'the provider';
  }
}
