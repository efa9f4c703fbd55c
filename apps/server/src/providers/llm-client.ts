/**
 * The one streaming client for OpenAI-compatible chat completions.
 *
 * The official `openai` SDK builds and sends the request (base URL, auth, headers) and turns HTTP
 * failures into typed errors; it sends through node:http (./node-fetch.ts), and the body of a 200 is
 * read here straight from the IncomingMessage with `eventsource-parser`, because the SDK's own stream
 * iterator costs about three times the CPU per token (bench/llm-client.bench.ts), a fetch body up to
 * twice per network read (./node-fetch.ts), and the iterator hides what we must see: whether `[DONE]`
 * arrived, `reasoning_content`, comments versus data.
 *
 * What real providers do, and what this file does about it (DESIGN §6):
 * - usage arrives in a last chunk with `choices: []`; some servers never send it → usage is counted
 *   with gpt-tokenizer and marked `estimated`;
 * - reasoning models stream `reasoning_content` (DeepSeek, vLLM, Qwen) or `reasoning` (OpenRouter) on
 *   `delta`, untyped → handed over apart as `kind: 'reasoning'`;
 * - a body that ends without `[DONE]` and without a `finish_reason` is a cut, not an answer → `truncated`;
 * - an `{"error":{…}}` object inside the stream → `stream_error`; a dropped connection → `network`;
 * - the SDK's `timeout` covers only the response headers → a first-token deadline and an idle-gap
 *   watchdog, both from the provider's `timeout_s`;
 * - the SDK ignores a `Retry-After` of 60 s or more and retries on its own schedule → SDK retries are
 *   off; retries happen here, only before the first token (after it, text has reached the user and
 *   the run engine decides), with exponential backoff and jitter, honouring `Retry-After`;
 * - aborting makes the SDK end quietly → a cancel is checked on `signal.aborted` and thrown as
 *   `cancelled`; every exit path aborts the request, so the upstream socket is closed.
 */
import type { IncomingMessage } from 'node:http';
import { finished as onFinished } from 'node:stream';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import OpenAI, { APIConnectionTimeoutError, APIError } from 'openai';
import { nodeBodyOf, nodeFetch } from './node-fetch.ts';
import { REDACTED, vendorSnippet } from './redact.ts';

export interface LlmProviderConfig {
  api_url: string;
  api_key: string;
  model_name: string;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  timeout_s: number;
}

export interface LlmMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface LlmDelta {
  kind: 'text' | 'reasoning';
  text: string;
}

export interface LlmUsage {
  prompt_tokens: number;
  completion_tokens: number;
  /** True when the provider sent no usage and the counts come from a local tokenizer. */
  estimated: boolean;
}

export interface LlmResult {
  finish_reason: string;
  text: string;
  reasoning: string;
  usage: LlmUsage;
  /** From the start of the attempt that answered to its first text or reasoning delta. */
  ttft_ms: number | null;
  /** From the call to the end, retries and backoff included. */
  duration_ms: number;
  attempts: number;
}

export type LlmErrorCode =
  | 'auth'
  | 'not_found'
  | 'rate_limited'
  | 'upstream_5xx'
  | 'network'
  | 'timeout'
  | 'stream_error'
  | 'truncated'
  | 'bad_response'
  | 'cancelled';

export interface RetryInfo {
  /** The attempt that failed (1-based); the next one is `attempt + 1`. */
  attempt: number;
  delay_ms: number;
  error: LlmError;
}

export interface StreamChatParams {
  provider: LlmProviderConfig;
  messages: LlmMessage[];
  response_format?: 'json_object';
  signal?: AbortSignal;
  /** Retries before the first token (default 2). */
  maxRetries?: number;
  onRetry?: (info: RetryInfo) => void;
  headers?: Record<string, string>;
  /** Overrides of the deadlines derived from `provider.timeout_s`. */
  timeouts?: { first_token_ms?: number; idle_ms?: number };
  /** Overrides `provider.max_tokens` (the connection test asks for a few tokens). */
  max_tokens?: number;
}

export class LlmError extends Error {
  override readonly name = 'LlmError';
  constructor(
    readonly code: LlmErrorCode,
    message: string,
    readonly retryable: boolean,
    readonly afterFirstToken: boolean,
    readonly extra: { status?: number; retryAfterMs?: number; upstreamCode?: string; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
  }
  get status(): number | undefined {
    return this.extra.status;
  }
  /** How long the provider asked us to wait (`Retry-After`), when it said. */
  get retryAfterMs(): number | undefined {
    return this.extra.retryAfterMs;
  }
  /** The provider's own error code (`model_not_found`, `invalid_api_key`, `insufficient_quota`…). */
  get upstreamCode(): string | undefined {
    return this.extra.upstreamCode;
  }
  withAfterFirstToken(afterFirstToken: boolean): LlmError {
    if (afterFirstToken === this.afterFirstToken) return this;
    const e = new LlmError(this.code, this.message, this.retryable, afterFirstToken, this.extra);
    e.stack = this.stack;
    return e;
  }
}

const DEFAULT_MAX_RETRIES = 2;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 8_000;
/** A `Retry-After` longer than this is not waited out: the error goes up so the engine can fail over. */
const MAX_RETRY_AFTER_MS = 30_000;

// One SDK client per (URL, key): the SDK keeps no connection state of its own (the agents pool sockets),
// so sharing is safe, and the cache spares building its option objects on every call.
const clients = new Map<string, OpenAI>();
function clientFor(p: LlmProviderConfig): OpenAI {
  const key = p.api_url + '\u0000' + p.api_key;
  let client = clients.get(key);
  if (!client) {
    if (clients.size >= 64) clients.delete(clients.keys().next().value!);
    client = new OpenAI({
      baseURL: p.api_url,
      // Local servers (Ollama, llama.cpp) take no key, but the SDK refuses to run without one.
      apiKey: p.api_key || 'none',
      // Never send the environment's OpenAI organization/project headers to some other provider.
      organization: null,
      project: null,
      maxRetries: 0,
      fetch: nodeFetch,
    });
    clients.set(key, client);
  }
  return client;
}

type Body = Record<string, unknown>;

function requestBody(params: StreamChatParams): Body {
  const p = params.provider;
  const body: Body = {
    model: p.model_name,
    messages: params.messages,
    stream: true,
    stream_options: { include_usage: true },
  };
  const maxTokens = params.max_tokens ?? p.max_tokens;
  if (maxTokens !== undefined) body.max_tokens = maxTokens;
  if (p.temperature !== undefined) body.temperature = p.temperature;
  if (p.top_p !== undefined) body.top_p = p.top_p;
  if (params.response_format) body.response_format = { type: params.response_format };
  return body;
}

/**
 * Some servers reject a parameter that others need: Azure's older API versions refuse
 * `stream_options`, OpenAI's reasoning models refuse `max_tokens` (they want
 * `max_completion_tokens`) and any `temperature`/`top_p`. A 400 that names one gets one retry without it.
 */
function adaptBody(body: Body, err: LlmError): Body | null {
  if (err.status !== 400 && err.status !== 422) return null;
  const m = err.message;
  const next = { ...body };
  if (/stream_options/.test(m) && next.stream_options) delete next.stream_options;
  else if (/max_completion_tokens/.test(m) && 'max_tokens' in next) {
    next.max_completion_tokens = next.max_tokens;
    delete next.max_tokens;
  } else if (/temperature/.test(m) && 'temperature' in next) delete next.temperature;
  else if (/top_p/.test(m) && 'top_p' in next) delete next.top_p;
  else return null;
  return next;
}

interface ChunkChoice {
  delta?: { content?: string | null; reasoning_content?: string | null; reasoning?: string | null } | null;
  message?: { content?: string | null; reasoning_content?: string | null } | null;
  finish_reason?: string | null;
}
interface Chunk {
  choices?: ChunkChoice[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: unknown;
}

/**
 * Streams one chat completion: each delta goes to `onDelta` as soon as its network read is parsed,
 * and the promise settles with how the answer ended. Deltas are pushed, not pulled: a pull (an async
 * generator over the body's async iterator) costs two promise hops and a read() per network read,
 * some 15 % of the client's CPU per token (bench/llm-client.bench.ts). `onDelta` runs inside
 * the read, so it must be quick; if it throws, the stream stops and its error comes back as is.
 * To stop early, abort `signal` (the promise then rejects with `cancelled`).
 */
export async function streamChat(params: StreamChatParams, onDelta: (delta: LlmDelta) => void = () => {}): Promise<LlmResult> {
  const started = performance.now();
  const { provider, signal } = params;
  const firstTokenMs = params.timeouts?.first_token_ms ?? provider.timeout_s * 1000;
  const idleMs = params.timeouts?.idle_ms ?? provider.timeout_s * 1000;
  const maxRetries = params.maxRetries ?? DEFAULT_MAX_RETRIES;
  if (!/^https?:\/\/[^/]/i.test(provider.api_url)) {
    throw new LlmError('not_found', 'The API URL is not an http(s) URL; check the provider settings.', false, false);
  }
  const client = clientFor(provider);
  let body = requestBody(params);
  let adaptations = 0;
  let attempts = 0;

  for (;;) {
    attempts++;
    if (signal?.aborted) throw cancelled(false);
    const attemptStart = performance.now();
    const ac = new AbortController();
    // Read per delta: a flag, where `signal.aborted` is a checked getter (about 1 % of a reader's time).
    let stopped = false;
    const onAbort = () => {
      stopped = true;
      ac.abort();
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    let text = '';
    let reasoning = '';
    let finish: string | null = null;
    let sawDone = false;
    let usage: Chunk['usage'] = null;
    let events = 0;
    let garbage = 0;
    let firstAt: number | null = null;
    let lastEventAt = attemptStart;
    let failure: LlmError | null = null;
    /** Some delta reached `onDelta`: a failure from now on is after the first token. */
    let delivered = false;
    let timedOut: 'first_token' | 'idle' | null = null;
    let finished = false;
    const pending: LlmDelta[] = [];
    /** Hands over what one read parsed; the consumer's own time is not the upstream's idleness. */
    const deliver = () => {
      if (!pending.length) return;
      delivered = true;
      try {
        for (let i = 0; i < pending.length && !stopped; i++) onDelta(pending[i]);
      } catch (err) {
        throw new ConsumerError(err);
      } finally {
        pending.length = 0;
      }
      lastEventAt = performance.now();
      if (stopped) throw cancelled(true);
    };

    // One timer per attempt: until the first delta it guards the first-token deadline, then the gap
    // since the last event. Events only stamp a time; the timer re-arms itself lazily.
    let watchdog: NodeJS.Timeout | undefined;
    const check = () => {
      const t = performance.now();
      const due = firstAt === null ? attemptStart + firstTokenMs : lastEventAt + idleMs;
      if (t >= due) {
        timedOut = firstAt === null ? 'first_token' : 'idle';
        ac.abort();
      } else watchdog = setTimeout(check, due - t);
    };
    watchdog = setTimeout(check, firstTokenMs);

    const onEvent = (ev: EventSourceMessage) => {
      if (sawDone || failure) return;
      const data = ev.data;
      if (data.startsWith('[DONE]')) {
        sawDone = true;
        return;
      }
      events++;
      lastEventAt = performance.now();
      let chunk: Chunk;
      try {
        chunk = JSON.parse(data) as Chunk;
      } catch {
        failure = new LlmError('bad_response', `The provider sent a stream event that is not JSON: ${snippet(data, provider.api_key)}`, false, delivered);
        return;
      }
      if (chunk === null || typeof chunk !== 'object') return;
      if (chunk.error || ev.event === 'error') {
        failure = streamError(chunk.error ?? chunk, provider.api_key, delivered);
        return;
      }
      if (chunk.usage) usage = chunk.usage;
      // The usage chunk has `choices: []`; Azure's first chunk too (content filter results).
      const choice = chunk.choices?.[0];
      if (!choice) return;
      const delta = choice.delta;
      if (delta) {
        const r = storable(delta.reasoning_content ?? delta.reasoning);
        if (typeof r === 'string' && r !== '') {
          reasoning += r;
          pending.push({ kind: 'reasoning', text: r });
        }
        const c = storable(delta.content);
        if (typeof c === 'string' && c !== '') {
          text += c;
          pending.push({ kind: 'text', text: c });
        }
        if (firstAt === null && pending.length) {
          firstAt = lastEventAt;
          // From now on the watchdog guards the idle gap (once; later events only stamp a time).
          clearTimeout(watchdog);
          watchdog = setTimeout(check, idleMs);
        }
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    };

    try {
      const response = await client.chat.completions
        .create(body as unknown as OpenAI.ChatCompletionCreateParamsStreaming, {
          signal: ac.signal,
          timeout: firstTokenMs,
          maxRetries: 0,
          headers: params.headers,
        })
        .asResponse();
      const type = response.headers.get('content-type') ?? '';
      if (type.includes('text/html')) {
        await response.body?.cancel();
        throw new LlmError('bad_response', 'The endpoint answered with an HTML page, not an OpenAI-compatible API; check the API URL (it usually ends in /v1).', false, false);
      }
      if (type.includes('application/json')) {
        // A server that ignores `stream: true` answers one JSON completion: take it whole.
        const whole = parseWhole(await response.text(), provider.api_key);
        text = whole.text;
        reasoning = whole.reasoning;
        finish = whole.finish;
        usage = whole.usage;
        firstAt = performance.now();
        if (reasoning) pending.push({ kind: 'reasoning', text: reasoning });
        if (text) pending.push({ kind: 'text', text });
        deliver();
        sawDone = true;
      } else {
        const upstream = nodeBodyOf(response);
        if (!upstream) throw new LlmError('bad_response', 'The provider answered without a body.', true, false);
        const parser = createParser({ onEvent, onError: () => void garbage++ });
        upstream.setEncoding('utf8');
        await readBody(upstream, (data) => {
          parser.feed(data);
          deliver();
          if (failure) throw failure;
          // Nothing meaningful follows [DONE]: the rest is read out only if it has already arrived.
          return sawDone;
        });
        if (!sawDone) {
          // A last event without its blank line still counts (lenient, like most clients).
          parser.feed('\n\n');
          deliver();
          if (failure) throw failure;
        }
        if (!sawDone && finish === null) {
          if (events === 0 && garbage > 0) {
            throw new LlmError('bad_response', `The endpoint did not answer like an OpenAI-compatible API (content-type ${type || 'missing'}); check the API URL.`, false, false);
          }
          throw new LlmError('truncated', 'The stream ended before the answer was complete (no [DONE] and no finish_reason); the output may be cut short.', true, delivered);
        }
      }
      finished = true;
      const u = usage as Chunk['usage'];
      const estimated = !(u && typeof u.prompt_tokens === 'number' && typeof u.completion_tokens === 'number');
      return {
        finish_reason: finish ?? 'stop',
        text,
        reasoning,
        usage: estimated
          ? { ...(await estimateUsage(params.messages, text, reasoning)), estimated: true }
          : { prompt_tokens: u!.prompt_tokens!, completion_tokens: u!.completion_tokens!, estimated: false },
        ttft_ms: firstAt === null ? null : Math.round(firstAt - attemptStart),
        duration_ms: Math.round(performance.now() - started),
        attempts,
      };
    } catch (e) {
      if (e instanceof ConsumerError) throw e.cause;
      const err = toLlmError(e, { signal, timedOut, delivered, firstTokenMs, idleMs, provider });
      if (err.code === 'cancelled' || err.afterFirstToken) throw err;
      const adapted = adaptations < 3 ? adaptBody(body, err) : null;
      if (adapted) {
        adaptations++;
        body = adapted;
        continue;
      }
      if (!err.retryable || attempts > maxRetries) throw err;
      if (err.retryAfterMs !== undefined && err.retryAfterMs > MAX_RETRY_AFTER_MS) throw err;
      const delay = backoff(attempts, err.retryAfterMs);
      params.onRetry?.({ attempt: attempts, delay_ms: delay, error: err });
      await sleep(delay, signal);
    } finally {
      clearTimeout(watchdog);
      signal?.removeEventListener('abort', onAbort);
      // Also when the consumer threw: closes the upstream socket.
      if (!finished) ac.abort();
    }
  }
}

/** An error thrown by the consumer of the deltas: it goes back to the caller as it was, never retried. */
class ConsumerError {
  constructor(readonly cause: unknown) {}
}

/**
 * Hands each piece of a response body to `onData` as it arrives ('data' events: per network read,
 * cheaper than the stream's async iterator); settles when the body ends, fails or `onData` throws.
 * When `onData` answers true the rest is not wanted: read out if it has all arrived (the socket then
 * goes back to the pool), otherwise the response is destroyed.
 */
function readBody(body: IncomingMessage, onData: (data: string) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err?: unknown) => {
      if (settled) return;
      settled = true;
      body.off('data', data);
      if (err) reject(err);
      else resolve();
    };
    const data = (chunk: string) => {
      let enough: boolean;
      try {
        enough = onData(chunk);
      } catch (err) {
        settle(err);
        body.destroy();
        return;
      }
      if (!enough) return;
      settle();
      // The parser marks the message complete after handing over its last piece: decide once it is done.
      process.nextTick(() => (body.complete ? body.resume() : body.destroy()));
    };
    body.on('data', data);
    onFinished(body, (err) => settle(err ?? undefined));
  });
}

/** Exponential backoff with equal jitter; a `Retry-After` is honoured as given (plus a little jitter). */
function backoff(attempt: number, retryAfterMs: number | undefined): number {
  if (retryAfterMs !== undefined) return Math.round(retryAfterMs + Math.random() * Math.min(250, retryAfterMs * 0.1));
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(cancelled(false));
    const onAbort = () => {
      clearTimeout(timer);
      reject(cancelled(false));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** What a stream stopped through its signal rejects with. */
export const cancelled = (afterFirstToken: boolean) => new LlmError('cancelled', 'The request was cancelled.', false, afterFirstToken);

// ---- usage estimate -----------------------------------------------------------------------------

let tokenizer: Promise<typeof import('gpt-tokenizer')> | undefined;

/**
 * Counts with the o200k vocabulary (GPT-4o family); other providers' tokenizers differ by a few
 * percent, which is why the result is flagged `estimated`. Loaded on first need: it takes ~0.4 s.
 */
async function estimateUsage(messages: LlmMessage[], text: string, reasoning: string) {
  tokenizer ??= import('gpt-tokenizer');
  const { countTokens } = await tokenizer;
  // Chat framing: ~3 tokens per message plus 3 to prime the reply (OpenAI's counting recipe).
  let prompt = 3;
  for (const m of messages) prompt += 3 + countTokens(m.content);
  return { prompt_tokens: prompt, completion_tokens: countTokens(text) + (reasoning ? countTokens(reasoning) : 0) };
}

// ---- responses that are not a stream ------------------------------------------------------------

function parseWhole(raw: string, apiKey: string) {
  let json: { choices?: ChunkChoice[]; usage?: Chunk['usage']; error?: unknown };
  try {
    json = JSON.parse(raw);
  } catch {
    throw new LlmError('bad_response', 'The endpoint answered with invalid JSON, not an OpenAI-compatible stream; check the API URL.', false, false);
  }
  if (json?.error) throw streamError(json.error, apiKey, false);
  const choice = json?.choices?.[0];
  if (!choice?.message) {
    throw new LlmError('bad_response', 'The endpoint answered JSON that is not a chat completion; check the API URL.', false, false);
  }
  return {
    text: storable(choice.message.content) ?? '',
    reasoning: storable(choice.message.reasoning_content) ?? '',
    finish: choice.finish_reason ?? 'stop',
    usage: json.usage ?? null,
  };
}

// ---- errors ------------------------------------------------------------------------------------

interface ErrorContext {
  signal: AbortSignal | undefined;
  timedOut: 'first_token' | 'idle' | null;
  delivered: boolean;
  firstTokenMs: number;
  idleMs: number;
  provider: LlmProviderConfig;
}

const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

function toLlmError(e: unknown, ctx: ErrorContext): LlmError {
  const after = ctx.delivered;
  if (ctx.signal?.aborted) return cancelled(after);
  // Errors found while parsing are built before the deltas of the same network read are handed over.
  if (e instanceof LlmError) return e.withAfterFirstToken(after);
  if (ctx.timedOut === 'first_token' || e instanceof APIConnectionTimeoutError) {
    return new LlmError('timeout', `The provider sent no answer within ${seconds(ctx.firstTokenMs)}.`, true, after, { cause: e });
  }
  if (ctx.timedOut === 'idle') {
    return new LlmError('timeout', `The stream stalled: no data from the provider for ${seconds(ctx.idleMs)}.`, true, after, { cause: e });
  }
  if (e instanceof APIError && typeof e.status === 'number') return statusError(e, ctx);
  const net = networkCode(e);
  const host = safeHost(ctx.provider.api_url);
  if (net === 'ENOTFOUND' || net === 'EAI_AGAIN') {
    return new LlmError('network', `Cannot resolve the provider's host ${host} (${net}); check the API URL.`, true, after, { cause: e, upstreamCode: net });
  }
  if (net === 'ECONNREFUSED') {
    return new LlmError('network', `Cannot connect to ${host}: connection refused; check the API URL and that the server is running.`, true, after, { cause: e, upstreamCode: net });
  }
  if (after || isTerminated(e)) {
    return new LlmError('network', `The connection to ${host} was cut ${after ? 'mid-stream' : 'before the answer started'}${net ? ` (${net})` : ''}.`, true, after, { cause: e, upstreamCode: net });
  }
  return new LlmError('network', `Cannot reach the provider at ${host}${net ? ` (${net})` : ''}.`, true, after, { cause: e, upstreamCode: net });
}

function statusError(e: APIError, ctx: ErrorContext): LlmError {
  const status = e.status as number;
  const body = (e.error ?? undefined) as { message?: unknown; code?: unknown; type?: unknown } | undefined;
  const upstreamCode = typeof body?.code === 'string' ? body.code : typeof body?.type === 'string' ? body.type : undefined;
  const detail = typeof body?.message === 'string' ? ': ' + snippet(body.message, ctx.provider.api_key) : '';
  const extra = { status, upstreamCode, cause: undefined };
  const model = ctx.provider.model_name;
  switch (true) {
    case status === 401:
      // The provider's own text often echoes part of the key: it is left out on purpose.
      return new LlmError('auth', 'The provider rejected the API key (HTTP 401); check the key in the provider settings.', false, false, extra);
    case status === 402:
      return new LlmError('auth', `The provider refused the request for billing reasons (HTTP 402)${detail}`, false, false, extra);
    case status === 403:
      return new LlmError('auth', `The API key is not allowed to use this model or endpoint (HTTP 403)${detail}`, false, false, extra);
    case status === 404: {
      const aboutModel = upstreamCode === 'model_not_found' || (typeof body?.message === 'string' && /model/i.test(body.message));
      return aboutModel
        ? new LlmError('not_found', `The provider does not know the model "${model}" (HTTP 404); check the model name.`, false, false, { ...extra, upstreamCode: upstreamCode ?? 'model_not_found' })
        : new LlmError('not_found', `The endpoint ${safeEndpoint(ctx.provider.api_url)} was not found (HTTP 404); check the API URL (it usually ends in /v1).`, false, false, extra);
    }
    case status === 405:
      return new LlmError('not_found', `The endpoint ${safeEndpoint(ctx.provider.api_url)} does not accept chat completions (HTTP 405); check the API URL.`, false, false, extra);
    case status === 408:
      return new LlmError('timeout', `The provider timed out (HTTP 408)${detail}`, true, false, extra);
    case status === 429: {
      const retryAfterMs = retryAfter(e.headers);
      // OpenAI answers 429 for an exhausted quota too; waiting does not help there.
      const quota = upstreamCode === 'insufficient_quota';
      const wait = retryAfterMs !== undefined ? `; retry after ${seconds(retryAfterMs)}` : '';
      return new LlmError('rate_limited', quota ? `The provider's quota for this key is exhausted (HTTP 429)${detail}` : `The provider is rate limiting requests (HTTP 429)${wait}${detail}`, !quota, false, { ...extra, retryAfterMs });
    }
    case status === 409 || status >= 500:
      return new LlmError('upstream_5xx', `The provider had a server error (HTTP ${status})${detail}`, true, false, { ...extra, retryAfterMs: retryAfter(e.headers) });
    default:
      return new LlmError('bad_response', `The provider rejected the request (HTTP ${status})${detail}`, false, false, extra);
  }
}

function streamError(error: unknown, apiKey: string, afterFirstToken: boolean): LlmError {
  const obj = (error && typeof error === 'object' ? error : {}) as { message?: unknown; code?: unknown; type?: unknown };
  const message = typeof obj.message === 'string' ? snippet(obj.message, apiKey) : typeof error === 'string' ? snippet(error, apiKey) : 'no details';
  const upstreamCode = typeof obj.code === 'string' ? obj.code : typeof obj.type === 'string' ? obj.type : undefined;
  return new LlmError('stream_error', `The provider reported an error inside the stream: ${message}`, true, afterFirstToken, { upstreamCode });
}

/** `Retry-After-Ms` (OpenAI), then `Retry-After` in seconds or as an HTTP date. */
function retryAfter(headers: Headers | undefined): number | undefined {
  if (!headers) return undefined;
  const ms = Number(headers.get('retry-after-ms'));
  if (Number.isFinite(ms) && ms > 0) return ms;
  const raw = headers.get('retry-after');
  if (!raw) return undefined;
  const s = Number(raw);
  if (Number.isFinite(s)) return s >= 0 ? s * 1000 : undefined;
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function networkCode(e: unknown): string | undefined {
  for (let c: unknown = e, depth = 0; c && depth < 6; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z_]+$/.test(code)) return code;
    if (c instanceof AggregateError && c.errors.length) return networkCode(c.errors[0]);
  }
  return undefined;
}

/** The socket closed under a body being read: node's IncomingMessage fails with "aborted" (ECONNRESET). */
function isTerminated(e: unknown): boolean {
  return e instanceof Error && (e as NodeJS.ErrnoException).code === 'ECONNRESET' && e.message === 'aborted';
}

/** Host and port only: a URL's path or query may carry a key (some gateways take `?key=`). */
function safeHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'the provider';
  }
}

function safeEndpoint(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname.replace(/\/+$/, '')}/chat/completions`;
  } catch {
    return 'chat/completions';
  }
}

/** An upstream message made safe to show: bounded, single-line, with anything key-like removed. */
function snippet(text: string, apiKey: string): string {
  // Keys of other accounts a vendor may quote look like ours: hidden by shape as well.
  return vendorSnippet(text, [apiKey]).replace(/\b(sk|pk|rk|ak|key)[-_][A-Za-z0-9*_-]{6,}/gi, REDACTED);
}

/** A model's text without NUL, which PostgreSQL cannot store in text: one stray byte must not fail the run's save. */
function storable<T extends string | null | undefined>(text: T): T {
  return (typeof text === 'string' && text.includes('\0') ? text.replaceAll('\0', '') : text) as T;
}
