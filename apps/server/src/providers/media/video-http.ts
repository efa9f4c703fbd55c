/**
 * The create-then-poll plumbing the image-to-video adapters share: one deadline and one abort for the
 * whole generation, vendor answers turned into MediaProviderError, retries at create, polling.
 */
import { MediaProviderError } from './errors.ts';
import type { VideoOptions, VideoStatus } from './video-adapter.ts';

/** What a vendor said, pulled out of its error body. */
export interface VendorWords {
  vendorCode?: string;
  vendorMessage?: string;
  moderation: boolean;
}

export interface VendorCall {
  method: 'GET' | 'POST';
  url: string;
  headers: () => Record<string, string>;
  body?: unknown;
  /** Reads the vendor's error body (Kling `{ code, message }`, Ark `{ error: { code, message } }`). */
  words: (body: unknown) => VendorWords;
}

export interface Generation {
  /** Aborted by the caller's signal or the overall deadline. */
  signal: AbortSignal;
  deadline: number;
  /** Turns an abort into 'cancelled' or 'timeout', whichever caused it. */
  abortError(): MediaProviderError;
}

/** Retry-After is honoured up to this; a longer wait is the stage's (or fail-over's) decision. */
const MAX_RETRY_AFTER_MS = 30_000;
const CREATE_ATTEMPTS = 4;
const BACKOFF_BASE_MS = 500;
/** Polls that may fail in a row (5xx, 429, network) before the generation is given up. */
const MAX_POLL_FAILURES = 5;

export function startGeneration(timeout_s: number, callerSignal: AbortSignal): Generation {
  const deadline = Date.now() + timeout_s * 1000;
  const timeoutSignal = AbortSignal.timeout(Math.max(1, timeout_s * 1000));
  const signal = AbortSignal.any([callerSignal, timeoutSignal]);
  return {
    signal,
    deadline,
    abortError: () =>
      callerSignal.aborted
        ? new MediaProviderError('cancelled', 'The generation was cancelled.', { retryable: false })
        : new MediaProviderError('timeout', `The vendor did not finish within ${timeout_s} s.`, { retryable: true }),
  };
}

export function sleep(ms: number, gen: Generation): Promise<void> {
  return new Promise((resolve, reject) => {
    if (gen.signal.aborted) return reject(gen.abortError());
    const onAbort = () => {
      clearTimeout(timer);
      reject(gen.abortError());
    };
    const timer = setTimeout(() => {
      gen.signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    gen.signal.addEventListener('abort', onAbort, { once: true });
  });
}

function retryAfterMsOf(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** One request to the vendor's JSON API; every failure comes out as a MediaProviderError. */
export async function callVendor(call: VendorCall, gen: Generation): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(call.url, {
      method: call.method,
      headers: { accept: 'application/json', ...(call.body !== undefined && { 'content-type': 'application/json' }), ...call.headers() },
      body: call.body === undefined ? undefined : JSON.stringify(call.body),
      signal: gen.signal,
    });
  } catch (err) {
    if (gen.signal.aborted) throw gen.abortError();
    throw new MediaProviderError('upstream', `The vendor could not be reached: ${(err as Error).message}`, { retryable: true, cause: err });
  }
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    if (gen.signal.aborted) throw gen.abortError();
    throw new MediaProviderError('upstream', 'The vendor cut the answer short.', { retryable: true, cause: err });
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (res.ok) {
    if (body === undefined || typeof body !== 'object' || body === null) {
      const type = res.headers.get('content-type') ?? 'no content type';
      throw new MediaProviderError('bad_response', `The vendor answered HTTP ${res.status} with ${type}, not JSON; check the API URL.`, { retryable: false });
    }
    return body;
  }
  const words = call.words(body);
  const said = words.vendorMessage ? `: ${words.vendorMessage}` : '';
  const common = { vendorMessage: words.vendorMessage };
  if (res.status === 401 || res.status === 403) {
    throw new MediaProviderError('auth', `The vendor refused the credentials (HTTP ${res.status})${said}`, { ...common, retryable: false });
  }
  if (words.moderation) {
    throw new MediaProviderError('moderation', `The vendor refused the content${said}`, { ...common, retryable: false });
  }
  if (res.status === 429) {
    throw new MediaProviderError('rate_limited', `The vendor is rate limiting (HTTP 429)${said}`, {
      ...common,
      retryable: true,
      retryAfterMs: retryAfterMsOf(res.headers.get('retry-after')),
    });
  }
  // A non-JSON 4xx is not the vendor's API speaking (a wrong path, a proxy page).
  if (body === undefined && res.status < 500) {
    throw new MediaProviderError('bad_response', `HTTP ${res.status} without the vendor's JSON error; check the API URL.`, { retryable: false });
  }
  if (res.status >= 500) throw new MediaProviderError('upstream', `The vendor failed (HTTP ${res.status})${said}`, { ...common, retryable: true });
  throw new MediaProviderError('upstream', `The vendor rejected the request (HTTP ${res.status})${said}`, { ...common, retryable: false });
}

/**
 * Creates the task, retrying answers that say "later" (429, 5xx) with backoff. A request that never
 * got an answer is not retried: the vendor may have created (and will bill) the task anyway.
 */
export async function createWithRetries(call: VendorCall, gen: Generation): Promise<unknown> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await callVendor(call, gen);
    } catch (err) {
      // `cause` is set only when no HTTP answer came back (network error, cut body).
      const answered = err instanceof MediaProviderError && (err.code === 'rate_limited' || (err.code === 'upstream' && err.retryable && !err.cause));
      if (!answered || attempt >= CREATE_ATTEMPTS) throw err;
      const backoff = BACKOFF_BASE_MS * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5);
      const wait = Math.min(MAX_RETRY_AFTER_MS, (err as MediaProviderError).retryAfterMs ?? backoff);
      if (Date.now() + wait >= gen.deadline) throw err;
      await sleep(wait, gen);
    }
  }
}

export type PollOutcome<T> = { done: true; result: T } | { done: false; status: VideoStatus };

/**
 * Polls until `read` says done; tolerates a few transient failures in a row. Abort (caller or
 * deadline) stops it at once: the pending sleep or request is cancelled, no further request is made.
 */
export async function pollUntilDone<T>(poll: VendorCall, read: (body: unknown) => PollOutcome<T>, gen: Generation, opts: VideoOptions): Promise<T> {
  const interval = Math.max(1, opts.pollIntervalMs ?? 3_000);
  let failures = 0;
  // The task exists and waits: say so before the first poll comes back.
  let last = 'queued/';
  opts.onStatus?.({ status: 'queued' });
  for (;;) {
    await sleep(interval, gen);
    let body: unknown;
    try {
      body = await callVendor(poll, gen);
      failures = 0;
    } catch (err) {
      const transient = err instanceof MediaProviderError && err.retryable && err.code !== 'timeout';
      if (!transient || ++failures >= MAX_POLL_FAILURES) throw err;
      continue;
    }
    const outcome = read(body);
    if (outcome.done) return outcome.result;
    const key = `${outcome.status.status}/${outcome.status.percent ?? ''}`;
    if (key !== last) {
      last = key;
      opts.onStatus?.(outcome.status);
    }
  }
}

/** Authenticated or not, without a billable task: read a task id that cannot exist. */
export async function probeAuth(call: VendorCall, timeout_s: number): Promise<{ ok: boolean; latency_ms: number; code?: MediaProviderError['code']; message: string }> {
  const started = performance.now();
  const gen = startGeneration(Math.min(timeout_s, 20), new AbortController().signal);
  const latency = () => Math.round(performance.now() - started);
  try {
    await callVendor(call, gen);
    return { ok: true, latency_ms: latency(), message: 'Connected: the credentials were accepted.' };
  } catch (err) {
    if (!(err instanceof MediaProviderError)) throw err;
    // A vendor error other than 401/403 (typically 404 "task not found") means the credentials passed.
    if (err.code === 'upstream' && !err.retryable && err.vendorMessage !== undefined) return { ok: true, latency_ms: latency(), message: 'Connected: the credentials were accepted.' };
    return { ok: false, latency_ms: latency(), code: err.code, message: err.message };
  }
}

/** The base of a vendor URL: an admin may paste it with or without the version path. */
export function apiBase(api_url: string, versionPath: string): string {
  const trimmed = api_url.replace(/\/+$/, '');
  return trimmed.endsWith(versionPath) ? trimmed : `${trimmed}${versionPath}`;
}
