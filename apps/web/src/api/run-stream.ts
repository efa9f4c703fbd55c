import { createParser } from 'eventsource-parser';
import { ApiError, apiUrl } from './client';
import { ErrorBody } from '@ai-story/contracts';

/**
 * The one SSE client of the app (DESIGN §4), for a run's stream and a project's stream alike.
 *
 * fetch + ReadableStream rather than EventSource: EventSource cannot report the HTTP status (a 401 or
 * 404 would retry forever), and cannot be told to stop on our terminal events. Frames are parsed by
 * `eventsource-parser` (never split lines by hand: `data:` may span chunks, CRLF, multi-line data).
 * Resume is ours: after a drop we reconnect with `?last_event_id=` and the server sends exactly the
 * missed events, so callers simply keep appending.
 */

export type StreamState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export type StreamEnd =
  /** A terminal event arrived (done, error, cancelled/interrupted …). */
  | { reason: 'terminal' }
  /** 204: the server has nothing more for us (our last event id was already the terminal one). */
  | { reason: 'no_content' }
  /** The caller closed the stream. */
  | { reason: 'closed' }
  /** 401/403/404, or too many failed reconnects in a row. */
  | { reason: 'failed'; error: unknown };

/** Anything with zod's `safeParse` (the contracts' `RunEvent`, `ProjectEvent`). */
export interface EventSchema<E> {
  safeParse(value: unknown): { success: true; data: E } | { success: false; error: unknown };
}

export interface OpenStreamOptions<E> {
  /** API path, e.g. `/runs/{id}/events`. */
  path: string;
  /** Query parameters sent on every connection (the resume id is added to them). */
  query?: Record<string, string>;
  schema: EventSchema<E>;
  onEvent: (event: E, id: string | null) => void;
  /** The stream is over after this event: no reconnect. */
  isTerminal?: (event: E) => boolean;
  onState?: (state: StreamState) => void;
  /** Resume after this id (e.g. kept from an earlier page of the same stream). */
  lastEventId?: string | null;
  /** Failed reconnects in a row before giving up; the count restarts whenever events flow. */
  maxAttempts?: number;
  /** No byte (not even the ~15 s heartbeat) for this long means a dead connection. */
  idleTimeoutMs?: number;
}

export interface StreamHandle {
  close(): void;
  readonly lastEventId: string | null;
  readonly done: Promise<StreamEnd>;
}

const BACKOFF_BASE_MS = 1_000;
const BACKOFF_MAX_MS = 15_000;
const STOP_STATUSES = new Set([401, 403, 404, 410]);

type Attempt = { kind: 'end'; end: StreamEnd } | { kind: 'drop'; error?: unknown; progressed: boolean };

export function openEventStream<E>(opts: OpenStreamOptions<E>): StreamHandle {
  const maxAttempts = opts.maxAttempts ?? 8;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 45_000;
  let lastEventId: string | null = opts.lastEventId ?? null;
  let closed = false;
  let controller: AbortController | null = null;
  let retryHintMs: number | null = null;
  let wake: (() => void) | null = null;

  const setState = (s: StreamState) => {
    try {
      opts.onState?.(s);
    } catch (err) {
      console.error('[stream] state handler failed', err);
    }
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      // coming back online is a better moment to retry than any timer
      const onOnline = () => done();
      globalThis.addEventListener?.('online', onOnline);
      function done() {
        clearTimeout(timer);
        globalThis.removeEventListener?.('online', onOnline);
        wake = null;
        resolve();
      }
      wake = done;
    });

  async function connectOnce(): Promise<Attempt> {
    const abort = (controller = new AbortController());
    let progressed = false;
    let terminal = false;
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    const armIdle = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => abort.abort(new DOMException('SSE idle timeout', 'TimeoutError')), idleTimeoutMs);
    };

    const parser = createParser({
      onEvent: (message) => {
        if (terminal) return;
        if (message.id) lastEventId = message.id;
        progressed = true;
        let data: unknown;
        try {
          data = JSON.parse(message.data);
        } catch {
          console.warn('[stream] skipped an event that is not JSON', message.data.slice(0, 200));
          return;
        }
        const parsed = opts.schema.safeParse(data);
        if (!parsed.success) {
          // A newer server may send event types this build does not know: skip them, never crash.
          console.warn('[stream] skipped an unknown event', data, parsed.error);
          return;
        }
        try {
          opts.onEvent(parsed.data, message.id ?? null);
        } catch (err) {
          console.error('[stream] event handler failed', err);
        }
        if (opts.isTerminal?.(parsed.data)) terminal = true;
      },
      onRetry: (ms) => {
        retryHintMs = ms;
      },
    });

    try {
      armIdle();
      const res = await fetch(apiUrl(opts.path, { ...opts.query, ...(lastEventId && { last_event_id: lastEventId }) }), {
        headers: { Accept: 'text/event-stream' },
        credentials: 'include',
        cache: 'no-store',
        signal: abort.signal,
      });
      if (res.status === 204) return { kind: 'end', end: { reason: 'no_content' } };
      if (!res.ok || !res.body) {
        const error = await responseError(res);
        if (STOP_STATUSES.has(res.status)) return { kind: 'end', end: { reason: 'failed', error } };
        return { kind: 'drop', error, progressed };
      }
      setState('open');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (closed) {
          await reader.cancel().catch(() => undefined);
          return { kind: 'end', end: { reason: 'closed' } };
        }
        if (done) break;
        armIdle();
        parser.feed(value);
        if (terminal) {
          await reader.cancel().catch(() => undefined);
          return { kind: 'end', end: { reason: 'terminal' } };
        }
      }
      // The body ended without a terminal event: a proxy timeout, a server restart, a cut network.
      return { kind: 'drop', progressed };
    } catch (error) {
      if (closed) return { kind: 'end', end: { reason: 'closed' } };
      if (terminal) return { kind: 'end', end: { reason: 'terminal' } };
      return { kind: 'drop', error, progressed };
    } finally {
      clearTimeout(idleTimer);
    }
  }

  const done = (async (): Promise<StreamEnd> => {
    let failures = 0;
    setState('connecting');
    while (!closed) {
      const attempt = await connectOnce();
      if (closed) break;
      if (attempt.kind === 'end') {
        setState('closed');
        return attempt.end;
      }
      failures = attempt.progressed ? 1 : failures + 1;
      if (failures > maxAttempts) {
        setState('closed');
        return { reason: 'failed', error: attempt.error ?? new Error('stream dropped') };
      }
      setState('reconnecting');
      await sleep(backoff(failures, retryHintMs));
    }
    setState('closed');
    return { reason: 'closed' };
  })();

  return {
    close() {
      if (closed) return;
      closed = true;
      controller?.abort();
      wake?.();
    },
    get lastEventId() {
      return lastEventId;
    },
    done,
  };
}

/** Exponential backoff with jitter, starting from the server's `retry:` hint when it gave one. */
function backoff(failures: number, hintMs: number | null): number {
  const base = hintMs ?? BACKOFF_BASE_MS;
  const ms = Math.min(BACKOFF_MAX_MS, base * 2 ** Math.max(0, failures - 1));
  return Math.round(ms * (0.8 + Math.random() * 0.4));
}

async function responseError(res: Response): Promise<ApiError> {
  const body: unknown = await res.json().catch(() => null);
  const parsed = ErrorBody.safeParse(body);
  if (parsed.success) return new ApiError(res.status, parsed.data.error.code, parsed.data.error.message, parsed.data.error.details);
  return new ApiError(res.status, res.status === 404 ? 'not_found' : 'internal_error', res.statusText || `HTTP ${res.status}`);
}
