/**
 * `streamChat` on a thread of its own (issue 17). At a model's pace every token is a network read, an
 * SSE parse and a `JSON.parse` of a chunk about six times the token's size; at 200 streams that was a
 * fifth of the studio's thread, and nearly half of what it allocated per token. Here the reads run in
 * a worker (llm-stream-worker.ts) that sends the studio at most one message every 2 ms, holding the
 * deltas of every stream since the last; the studio's thread spends its time on runs and their subscribers.
 *
 * Same contract as `streamChat`: deltas pushed to `onDelta` (a throw there stops the stream and comes
 * back as it was), cancel through `signal` (then `cancelled`), the same `LlmResult` and `LlmError`s.
 * Retries, deadlines and the request itself happen in the worker, as they would here.
 */
import { Worker } from 'node:worker_threads';
import type { ThreadMetrics } from '../metrics/metrics.ts';
import { workerModule } from '../worker-module.ts';
import { cancelled, LlmError, type LlmDelta, type LlmErrorCode, type LlmResult, type RetryInfo, type StreamChatParams } from './llm-client.ts';

const WORKER = workerModule('llm-stream-worker', import.meta.url);
const YOUNG_GENERATION_MB = 4;

/** What crosses to the worker: the parameters without the callback and the signal. */
export type ReaderParams = Omit<StreamChatParams, 'signal' | 'onRetry'>;
/** `retries`: whether the caller wants to hear of each retry (its `onRetry`). */
export type ToReader = { type: 'start'; id: number; params: ReaderParams; retries: boolean } | { type: 'cancel'; id: number } | { type: 'metrics' };
export interface ReaderError {
  message: string;
  stack?: string;
  llm?: { code: LlmErrorCode; retryable: boolean; afterFirstToken: boolean; status?: number; retryAfterMs?: number; upstreamCode?: string; cause?: { message: string; code?: string } };
}
export type FromReader =
  | { type: 'deltas'; deltas: (number | string)[] }
  | { type: 'retry'; id: number; attempt: number; delay_ms: number; error: ReaderError }
  | { type: 'done'; id: number; result: LlmResult }
  | { type: 'failed'; id: number; error: ReaderError }
  | { type: 'metrics'; metrics: ThreadMetrics };

interface Stream {
  onDelta: (delta: LlmDelta) => void;
  onRetry?: (info: RetryInfo) => void;
  /** Its signal was aborted: a flag, since deltas check it one by one and `signal.aborted` is a checked getter. */
  cancelled: boolean;
  /** Some delta reached `onDelta`: a lost thread is then a failure after the first token. */
  delivered: boolean;
  resolve: (result: LlmResult) => void;
  reject: (err: unknown) => void;
  stopListening: () => void;
}

export class LlmStreamThread {
  private worker?: Worker;
  private readonly streams = new Map<number, Stream>();
  private nextId = 1;
  /** Scrapes waiting for the thread's metrics, answered in the order asked (one port keeps its messages in order). */
  private metricsAsked: ((metrics: ThreadMetrics) => void)[] = [];

  get activeCount() {
    return this.streams.size;
  }

  /**
   * Starts the thread ahead of the first stream: loading it takes a few hundred milliseconds, which
   * the first runs of a busy studio would otherwise wait out.
   */
  warm() {
    this.worker ??= this.start();
  }

  streamChat(params: StreamChatParams, onDelta: (delta: LlmDelta) => void = () => {}): Promise<LlmResult> {
    const { signal, onRetry, ...rest } = params;
    if (signal?.aborted) return Promise.reject(cancelled(false));
    const id = this.nextId++;
    return new Promise<LlmResult>((resolve, reject) => {
      const stream: Stream = { onDelta, onRetry, cancelled: false, delivered: false, resolve, reject, stopListening: () => signal?.removeEventListener('abort', onAbort) };
      const onAbort = () => {
        stream.cancelled = true;
        this.cancel(id);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.streams.set(id, stream);
      (this.worker ??= this.start()).postMessage({ type: 'start', id, params: rest, retries: onRetry !== undefined } satisfies ToReader);
      // A stream in flight keeps the process alive, as its socket would on this thread.
      if (this.streams.size === 1) this.worker?.ref();
    });
  }

  /** The thread's own metrics (the token gap, llm-stream-worker.ts); none while it is not running. */
  threadMetrics(): Promise<ThreadMetrics> {
    const worker = this.worker;
    if (!worker) return Promise.resolve([]);
    return new Promise((resolve) => {
      this.metricsAsked.push(resolve);
      worker.postMessage({ type: 'metrics' } satisfies ToReader);
    });
  }

  /** Ends the thread; streams still open fail as a lost connection would. */
  async close() {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
    this.failAll();
  }

  private cancel(id: number) {
    this.worker?.postMessage({ type: 'cancel', id } satisfies ToReader);
  }

  private start(): Worker {
    // What it allocates per token dies young (only each stream's state lives on): a small young
    // generation is collected often and cheaply, on this thread, instead of growing the studio's memory.
    const worker = new Worker(WORKER.boot, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } });
    // An idle reader must not keep a process alive (its streams do, while they last).
    worker.unref();
    worker.on('message', (message: FromReader) => this.receive(message));
    worker.on('error', () => {}); // it then exits, which fails its streams
    worker.on('exit', () => {
      if (this.worker !== worker) return;
      this.worker = undefined; // the next stream starts a new one
      this.failAll();
    });
    return worker;
  }

  private receive(message: FromReader) {
    if (message.type === 'deltas') {
      const d = message.deltas;
      for (let i = 0; i < d.length; i += 3) {
        const id = d[i] as number;
        const stream = this.streams.get(id);
        if (!stream || stream.cancelled) continue;
        stream.delivered = true;
        this.callBack(id, () => stream.onDelta({ kind: d[i + 1] === 1 ? 'reasoning' : 'text', text: d[i + 2] as string }));
      }
    } else if (message.type === 'retry') {
      const { id, attempt, delay_ms, error } = message;
      const onRetry = this.streams.get(id)?.onRetry;
      if (onRetry) this.callBack(id, () => onRetry({ attempt, delay_ms, error: revived(error) as LlmError }));
    } else if (message.type === 'metrics') this.metricsAsked.shift()?.(message.metrics);
    else if (message.type === 'done') this.end(message.id)?.resolve(message.result);
    else this.end(message.id)?.reject(revived(message.error));
  }

  /** As streamChat does: an error of the caller's callback ends its stream and comes back as it was. */
  private callBack(id: number, callback: () => void) {
    try {
      callback();
    } catch (err) {
      this.end(id)?.reject(err);
      this.cancel(id);
    }
  }

  private end(id: number): Stream | undefined {
    const stream = this.streams.get(id);
    if (!stream) return undefined;
    this.streams.delete(id);
    if (this.streams.size === 0) this.worker?.unref();
    stream.stopListening();
    return stream;
  }

  private failAll() {
    // A lost thread's counts are lost with it: scrapes waiting get none, as from a thread not yet started.
    for (const answer of this.metricsAsked.splice(0)) answer([]);
    for (const id of [...this.streams.keys()]) {
      const stream = this.end(id)!;
      stream.reject(new LlmError('network', 'The connection to the provider was lost (the upstream reader thread ended).', true, stream.delivered));
    }
  }
}

function revived(error: ReaderError): Error {
  const llm = error.llm;
  const err = llm
    ? new LlmError(llm.code, error.message, llm.retryable, llm.afterFirstToken, { status: llm.status, retryAfterMs: llm.retryAfterMs, upstreamCode: llm.upstreamCode, cause: llm.cause })
    : new Error(error.message);
  if (error.stack) err.stack = error.stack;
  return err;
}
