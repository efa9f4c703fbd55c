import type { MediaItem, ProgressStep, TaskStatus } from '@ai-story/contracts';
import type { RunRow } from '../db/schema.ts';
import type { PipelineState } from './repository.ts';
import type { ClientProvider } from '../providers/service.ts';
import type { StageContext, StageDefinition } from '../stages/definition.ts';
import { StreamedItems } from '../stages/item-stream.ts';
import { cleanDeep, cleanDelta } from './well-formed.ts';
import { tokenTarget, type RunEventBody, type RunPublisher, type TokenTarget } from './publisher.ts';

/**
 * Tokens arriving faster than a frame, two gaps in a row, are gathered into one event per COALESCE_MS;
 * any other token goes out at once: no added delay at a reading pace, fewer bytes and socket writes
 * when a fast model streams (DESIGN §4: at most 8× the text on the wire). Two gaps, not one: a token
 * that came late and the next one on time arrive close together, and holding the second would add a
 * wait to a stream that is not fast, only jittery (a busy machine's reads bunch up like this).
 */
const FRAME_MS = 16;
const COALESCE_MS = 25;
const PROGRESS_EVERY_MS = 500;
/** A task's own percent is sent at most this often. */
const TASK_PERCENT_EVERY_MS = 500;

export type FinalStatus = 'completed' | 'failed' | 'cancelled' | 'interrupted';

/** A piece of a run's text to checkpoint: only what was added since the last one. */
export interface TextChunk {
  runId: string;
  seq: number;
  offset: number;
  text: string;
}

/** Below these a measured speed is mostly the wait for the first token: no estimate yet (估算中). */
const ETA_MIN_TOKENS = 20;
const ETA_MIN_MS = 1500;

/** Time left from the speed so far, or null until the speed means something. */
export function etaMs(tokens: number, elapsedMs: number, expectedTokens: number | null): number | null {
  if (!expectedTokens || tokens < ETA_MIN_TOKENS || elapsedMs < ETA_MIN_MS) return null;
  const left = Math.max(0, expectedTokens - tokens);
  return Math.round((left / tokens) * elapsedMs);
}

/**
 * A running run's state (STYLE §13): its text and how it is coalesced into token events, progress,
 * the structured or media items it has sent, and what is due for the next checkpoint. The run
 * service decides what happens; this object keeps the moment-to-moment state and emits its events.
 */
export class LiveRun {
  readonly target: TokenTarget;
  readonly abort = new AbortController();
  /** Why the run was stopped from outside: a user's cancel or the server shutting down. */
  stopReason?: 'cancelled' | 'interrupted';
  /** The access check of the start that made it (RunService.startersRow); none for a queued run a worker took. */
  checked?: { userId: string; accessVersion: number; at: number };
  finalStatus?: FinalStatus;
  /** The project's pipeline state its saved ending saw. */
  pipelineAtEnd?: PipelineState;
  provider?: ClientProvider;
  finished: Promise<void> = Promise.resolve();

  text = '';
  private pending = '';
  /** Half of a surrogate pair waiting for the next delta (never stored or sent alone). */
  private carry = '';
  tokens = 0;
  readonly startedAt = Date.now();
  private lastFlushAt = 0;
  private lastDeltaAt = 0;
  private lastGapMs = Infinity;
  private lastProgressAt = 0;
  private flushTimer?: NodeJS.Timeout;
  private checkpointedLength = 0;
  private chunkSeq = 0;

  /** Structured LLM stages: items read from the stream so far, and how many went out as events. */
  private streamed?: StreamedItems;
  private itemsSent = 0;

  /** Media stages: finished items (saved as each finished), and per-task percent throttling. */
  readonly mediaItems: MediaItem[] = [];
  private itemSeq = 0;
  private readonly lastTaskPercent = new Map<string, { at: number; step: string | undefined }>();

  constructor(
    readonly row: RunRow,
    readonly definition: StageDefinition,
    readonly input: unknown,
    readonly ctx: StageContext,
    private readonly publisher: RunPublisher,
    private readonly expectedTokens: number | null,
  ) {
    this.target = tokenTarget({ runId: row.id, projectId: row.projectId, stage: definition.key });
    if (definition.kind === 'llm' && definition.items) this.streamed = new StreamedItems(definition.items.key);
  }

  get id() {
    return this.row.id;
  }

  emit(event: RunEventBody, terminal = false) {
    this.publisher.emit(this.target, event, terminal);
  }

  // ---- text (LLM stages) ----

  /** The text sent in events so far (what is still coalescing goes out with the next event). */
  get sentText() {
    return this.text.slice(0, this.text.length - this.pending.length);
  }

  onDelta(raw: string) {
    const { text, carry } = cleanDelta(this.carry, raw);
    this.carry = carry;
    if (!text) return;
    this.text += text;
    this.pending += text;
    this.tokens += 1;
    const now = Date.now();
    const gap = now - this.lastDeltaAt;
    const fast = gap < FRAME_MS && this.lastGapMs < FRAME_MS;
    this.lastDeltaAt = now;
    this.lastGapMs = gap;
    if (this.flushTimer) return;
    const wait = COALESCE_MS - (now - this.lastFlushAt);
    if (!fast || wait <= 0) this.flush();
    else this.flushTimer = setTimeout(() => this.flush(), wait);
  }

  flush() {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (!this.pending) return;
    const now = Date.now();
    const delta = this.pending;
    this.publisher.token(this.target, delta);
    this.pending = '';
    this.lastFlushAt = now;
    if (this.streamed) this.sendItems(this.streamed.write(delta));
    if (now - this.lastProgressAt >= PROGRESS_EVERY_MS) {
      this.lastProgressAt = now;
      this.emit(this.tokenProgress(now));
    }
  }

  /** After a provider broke mid-answer: clients discard the partial text and follow the restart. */
  resetText(reason: string) {
    this.flush();
    this.text = '';
    this.carry = '';
    this.tokens = 0;
    this.itemsSent = 0;
    this.checkpointedLength = 0;
    if (this.definition.kind === 'llm' && this.definition.items) this.streamed = new StreamedItems(this.definition.items.key);
    this.emit({ type: 'reset', reason });
  }

  /** Sends each structured item (shot, movement) once, as soon as it is complete. */
  sendItems(raw: unknown[], saved = false) {
    if (this.definition.kind !== 'llm' || !this.definition.items) return;
    const items = this.definition.items;
    while (this.itemsSent < raw.length) {
      const item = saved ? raw[this.itemsSent] : cleanDeep(items.normalize(raw[this.itemsSent], this.itemsSent, this.input, this.ctx));
      if (item === null) return; // not usable yet or never: the final parse decides
      this.emit(items.event === 'shot' ? { type: 'shot', shot: item as never } : { type: 'movement', movement: item as never });
      this.itemsSent++;
    }
  }

  private tokenProgress(now: number): RunEventBody {
    const elapsed = now - this.startedAt;
    const tokensPerS = elapsed > 0 ? (this.tokens * 1000) / elapsed : 0;
    return {
      type: 'progress',
      tokens: this.tokens,
      elapsed_ms: elapsed,
      tokens_per_s: Math.round(tokensPerS * 10) / 10,
      eta_ms: etaMs(this.tokens, elapsed, this.expectedTokens),
    };
  }

  /** Whether any checkpoint was taken (the run's end then folds its chunks away). */
  get checkpointed() {
    return this.chunkSeq > 0;
  }

  /** The next checkpoint's piece of text, or null when nothing was added since the last. */
  takeCheckpoint(): TextChunk | null {
    if (this.text.length === this.checkpointedLength) return null;
    // After a reset the text starts over, and so does the checkpointed part.
    const offset = Math.min(this.checkpointedLength, this.text.length);
    this.checkpointedLength = this.text.length;
    return { runId: this.row.id, seq: this.chunkSeq++, offset, text: this.text.slice(offset) };
  }

  /** A checkpoint that did not reach the database: the next one starts where this one did. */
  checkpointFailed(chunk: TextChunk) {
    if (this.checkpointedLength > chunk.offset) this.checkpointedLength = chunk.offset;
  }

  // ---- media stages ----

  task(shotId: string, status: TaskStatus, extra: { percent?: number; message?: string; position?: number } = {}) {
    if (status === 'running' && extra.percent !== undefined) {
      // A task's percent is worth a few events a second, not one per ffmpeg progress line; a new step
      // (queued → rendering, rendering → fitting) is told at once, or the shot would seem stuck in the old one.
      const now = Date.now();
      const last = this.lastTaskPercent.get(shotId);
      if (last && last.step === extra.message && now - last.at < TASK_PERCENT_EVERY_MS) return;
      this.lastTaskPercent.set(shotId, { at: now, step: extra.message });
    } else {
      this.lastTaskPercent.delete(shotId);
    }
    this.emit({ type: 'task', shot_id: shotId, status, ...extra });
  }

  /** A finished item, given the sequence number it is saved under. */
  nextItemSeq() {
    return this.itemSeq++;
  }

  addItem(item: MediaItem) {
    this.mediaItems.push(item);
    const event = this.definition.kind === 'media' ? this.definition.itemEvent : 'image';
    this.emit({ type: event, shot_id: item.shot_id, [event]: item } as RunEventBody);
  }

  /**
   * Progress inside a media stage's finishing step: its own percent, and a time left measured from the
   * step's start (the shot tasks before it say nothing about how long an encode takes).
   */
  finishProgress(total: number, percent: number, code: string) {
    const now = Date.now();
    this.finishStartedAt ??= now;
    const p = Math.max(0, Math.min(100, Math.round(percent)));
    if (p === this.lastFinish.percent && code === this.lastFinish.code) return;
    this.lastFinish = { percent: p, code };
    const spent = now - this.finishStartedAt;
    const eta = p >= 100 ? 0 : p > 0 ? Math.round((spent / p) * (100 - p)) : null;
    this.emit({ type: 'progress', done: total, total, percent: p, elapsed_ms: now - this.startedAt, eta_ms: eta, step: { code, params: { percent: p } } });
  }

  private finishStartedAt: number | undefined;
  private lastFinish = { percent: -1, code: '' };

  mediaProgress(done: number, total: number, step?: ProgressStep) {
    const elapsed = Date.now() - this.startedAt;
    const eta = done > 0 && done < total ? Math.round((elapsed / done) * (total - done)) : done >= total ? 0 : null;
    this.emit({ type: 'progress', done, total, percent: total ? Math.round((done / total) * 100) : 100, elapsed_ms: elapsed, eta_ms: eta, ...(step && { step }) });
  }

  dispose() {
    clearTimeout(this.flushTimer);
  }
}
