/**
 * One JSON call to a media vendor, with what every adapter needs: a per-request timeout, cancel,
 * retries with backoff for 429 / 5xx / network errors (honouring Retry-After up to a cap), and the
 * answer classified into a MediaProviderError. Each adapter supplies how its vendor words errors.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { MediaProviderError } from './errors.ts';

export interface VendorError {
  message: string;
  vendorCode?: string;
  /** True when the vendor refused the content (safety system, data inspection). */
  moderation?: boolean;
}

export interface JsonCallOptions {
  signal: AbortSignal;
  timeoutMs: number;
  /** Reads the vendor's error body (JSON when it parsed, else undefined; the raw text beside it). */
  vendorError: (status: number, json: unknown, text: string) => VendorError;
  /** Attempts after the first, for retryable failures only. */
  retries?: number;
  /**
   * Whether a request that timed out or lost its connection after sending may be repeated. Creating
   * a billable image is not: the vendor may have started it.
   */
  idempotent?: boolean;
}

/** A Retry-After longer than this is not waited for here: the error goes up so the provider cools down. */
export const MAX_RETRY_AFTER_MS = 30_000;
const BASE_BACKOFF_MS = 500;
const MAX_ERROR_TEXT = 300;

export async function callJson(url: string, init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: unknown }, options: JsonCallOptions): Promise<unknown> {
  const retries = options.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    try {
      return await callOnce(url, init, options);
    } catch (e) {
      if (!(e instanceof MediaProviderError) || !e.retryable || attempt >= retries) throw e;
      if (e.code === 'timeout' && !options.idempotent) throw e;
      if (e.retryAfterMs !== undefined && e.retryAfterMs > MAX_RETRY_AFTER_MS) throw e;
      const backoff = BASE_BACKOFF_MS * 2 ** attempt * (0.75 + Math.random() * 0.5);
      try {
        await sleep(e.retryAfterMs ?? backoff, undefined, { signal: options.signal });
      } catch {
        throw cancelled();
      }
    }
  }
}

async function callOnce(url: string, init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: unknown }, options: JsonCallOptions): Promise<unknown> {
  if (options.signal.aborted) throw cancelled();
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = AbortSignal.any([options.signal, timeout]);
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, {
      method: init.method,
      headers: { accept: 'application/json', ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}), ...init.headers },
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
      signal,
    });
    text = await res.text();
  } catch (e) {
    if (options.signal.aborted) throw cancelled();
    if (timeout.aborted) throw new MediaProviderError('timeout', `No answer from ${hostOf(url)} within ${Math.round(options.timeoutMs / 1000)} s.`);
    // Connection refused or reset: nothing was created if it never connected, but a reset after
    // sending is ambiguous, so only idempotent calls retry it (see callJson).
    const cause = (e as { cause?: { code?: string } }).cause?.code;
    throw new MediaProviderError('upstream', `${hostOf(url)} could not be reached${cause ? ` (${cause})` : ''}.`, { retryable: options.idempotent === true || cause === 'ECONNREFUSED' });
  }

  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (res.ok) {
    if (json === undefined || json === null || typeof json !== 'object') {
      const what = /^\s*</.test(text) ? 'a web page' : 'something that is not JSON';
      throw new MediaProviderError('bad_response', `${hostOf(url)} answered with ${what} instead of the vendor's JSON; check the API URL.`, { status: res.status });
    }
    return json;
  }

  const vendor = options.vendorError(res.status, json, text.slice(0, MAX_ERROR_TEXT));
  const details = { status: res.status, vendorCode: vendor.vendorCode };
  if (vendor.moderation) {
    throw new MediaProviderError('moderation', `The provider refused the prompt: ${vendor.message}`, { ...details, vendorMessage: vendor.message, retryable: false });
  }
  if (res.status === 401 || res.status === 403) throw new MediaProviderError('auth', `The key was refused (HTTP ${res.status}): ${vendor.message}`, details);
  if (res.status === 429) {
    const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
    throw new MediaProviderError('rate_limited', `Rate limited (HTTP 429): ${vendor.message}`, { ...details, retryAfterMs });
  }
  if (res.status >= 500) throw new MediaProviderError('upstream', `The provider had a server error (HTTP ${res.status}): ${vendor.message}`, details);
  throw new MediaProviderError('upstream', `The provider refused the request (HTTP ${res.status}): ${vendor.message}`, { ...details, retryable: false });
}

/** Retry-After is seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

export function cancelled(): MediaProviderError {
  return new MediaProviderError('cancelled', 'Cancelled.', { retryable: false });
}

export function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

export function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}
