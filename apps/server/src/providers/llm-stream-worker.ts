/**
 * The upstream reader's own thread (llm-stream-thread.ts starts it): here `streamChat` sends each
 * request and reads each token stream — socket reads, SSE parsing, one `JSON.parse` per chunk — so
 * the studio's thread gets the deltas only. What every stream parsed since the last message goes over
 * in one message, however many streams and reads it came from (at most one per BATCH_MS).
 */
import { parentPort } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { tokenGapHistogram } from '../metrics/metrics.ts';
import { LlmError, streamChat, type RetryInfo } from './llm-client.ts';
import type { FromReader, ReaderError, ToReader } from './llm-stream-thread.ts';

const port = parentPort!;
const streams = new Map<number, AbortController>();
const metrics = new Registry();
const tokenGap = tokenGapHistogram(metrics);

/** Deltas not yet sent, flat: stream id, 1 for reasoning (0 for text), the text; and so on. */
let batch: (number | string)[] = [];
let lastSent = -Infinity;

/**
 * At most one message per BATCH_MS: while tokens stream, a turn of this thread often holds a single
 * read, and a message per read would cost both threads more than the reads. A delta after a quiet
 * spell goes at the end of its turn, without waiting.
 */
const BATCH_MS = 2;

function schedule() {
  const wait = lastSent + BATCH_MS - performance.now();
  if (wait <= 0) setImmediate(flush);
  else setTimeout(flush, wait);
}

function flush() {
  if (!batch.length) return;
  port.postMessage({ type: 'deltas', deltas: batch } satisfies FromReader);
  batch = [];
  lastSent = performance.now();
}

port.on('message', (message: ToReader) => {
  if (message.type === 'cancel') {
    streams.get(message.id)?.abort();
    return;
  }
  if (message.type === 'metrics') {
    void metrics.getMetricsAsJSON().then((json) => port.postMessage({ type: 'metrics', metrics: json } satisfies FromReader));
    return;
  }
  const { id, params, retries } = message;
  const abort = new AbortController();
  streams.set(id, abort);
  const onRetry = retries ? (info: RetryInfo) => port.postMessage({ type: 'retry', id, attempt: info.attempt, delay_ms: info.delay_ms, error: serialised(info.error) } satisfies FromReader) : undefined;
  let lastDeltaAt = 0;
  streamChat({ ...params, signal: abort.signal, onRetry }, (delta) => {
    const now = performance.now();
    if (lastDeltaAt) tokenGap.observe((now - lastDeltaAt) / 1000);
    lastDeltaAt = now;
    if (!batch.length) schedule();
    batch.push(id, delta.kind === 'reasoning' ? 1 : 0, delta.text);
  }).then(
    (result) => settle(id, { type: 'done', id, result }),
    (err: unknown) => settle(id, { type: 'failed', id, error: serialised(err) }),
  );
});

/** A stream's end goes after its last deltas: one port keeps its messages in order. */
function settle(id: number, message: FromReader) {
  flush();
  streams.delete(id);
  port.postMessage(message);
}

function serialised(err: unknown): ReaderError {
  if (err instanceof LlmError) {
    const { status, retryAfterMs, upstreamCode, cause } = err.extra;
    return { llm: { code: err.code, retryable: err.retryable, afterFirstToken: err.afterFirstToken, status, retryAfterMs, upstreamCode, cause: describe(cause) }, message: err.message, stack: err.stack };
  }
  return err instanceof Error ? { message: err.message, stack: err.stack } : { message: String(err) };
}

/** A cause as far as a message can carry it: its message and code (a socket or TLS error's own object cannot cross). */
function describe(cause: unknown) {
  if (cause === undefined) return undefined;
  if (!(cause instanceof Error)) return { message: String(cause) };
  const code = (cause as NodeJS.ErrnoException).code;
  return { message: cause.message, ...(typeof code === 'string' ? { code } : {}) };
}
