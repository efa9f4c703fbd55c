import { RunEvent, isTerminalEvent, type MediaItem, type Movement, type ProgressStep, type Run, type RunErrorResponse, type Shot, type TaskStatus } from '@ai-story/contracts';
import { computed, onScopeDispose, reactive, ref } from 'vue';
import { http, isApiError } from '@/api/client';
import { openEventStream, type StreamHandle, type StreamState } from '@/api/run-stream';

/** Where a run is, as the screen tells it. */
export type RunPhase = 'idle' | 'connecting' | 'queued' | 'running' | 'completed' | 'failed' | 'cancelled' | 'interrupted';

export interface RunProgress {
  tokens: number;
  tokens_per_s: number;
  elapsed_ms: number;
  eta_ms: number | null;
  /** Media stages: items finished of all, share done, and what is happening now. */
  done: number | null;
  total: number | null;
  percent: number | null;
  step: ProgressStep | null;
}

/** One shot's task in a media stage, as its last `task` event left it. */
export interface ShotTask {
  status: TaskStatus;
  percent: number | null;
  message: string | null;
  position: number | null;
}

const EMPTY_PROGRESS: RunProgress = { tokens: 0, tokens_per_s: 0, elapsed_ms: 0, eta_ms: null, done: null, total: null, percent: null, step: null };

export interface UseRunStreamOptions {
  /** Called once per run when it ends (done, error, stopped), with the run as saved when known. */
  onFinished?: (phase: RunPhase, run: Run | null) => void;
}

const LIVE: ReadonlySet<RunPhase> = new Set(['connecting', 'queued', 'running']);

/**
 * Follows one run's stream (`/runs/{id}/events`) and turns it into what a stage tab shows: the text
 * (token deltas accumulated; a `reset` discards it), progress, status and error. Attaching to a run
 * that is already going replays the text so far, then the live tail — a reload mid-run continues
 * where it was, and a second tab sees the same text.
 */
export function useRunStream(options: UseRunStreamOptions = {}) {
  const runId = ref<string | null>(null);
  const text = ref('');
  const phase = ref<RunPhase>('idle');
  const connection = ref<StreamState | 'idle'>('idle');
  const progress = reactive<RunProgress>({ ...EMPTY_PROGRESS });
  const error = ref<RunErrorResponse | null>(null);
  const info = ref('');
  /** Every `info` event of the run (which model, fail-over, what a stage adjusted), in order. */
  const infos = ref<{ message: string; code?: string; params?: Record<string, string | number> }[]>([]);
  const resetReason = ref('');
  const run = ref<Run | null>(null);
  const shots = ref<Shot[]>([]);
  const movements = ref<Movement[]>([]);
  /** Media stages: each shot's task, and each shot's finished item (image, audio or clip). */
  const tasks = ref<Record<string, ShotTask>>({});
  const items = ref<Record<string, MediaItem>>({});

  // Progress events come at most twice a second; between them the clock keeps ticking locally.
  const now = ref(Date.now());
  let ticker: ReturnType<typeof setInterval> | undefined;
  let progressAt = 0;
  let startedAt = 0;
  let handle: StreamHandle | null = null;
  let current: object | null = null;
  let finishedReported = false;

  const live = computed(() => LIVE.has(phase.value));
  const elapsedMs = computed(() => {
    if (progressAt) return progress.elapsed_ms + (live.value ? Math.max(0, now.value - progressAt) : 0);
    return live.value && startedAt ? Math.max(0, now.value - startedAt) : progress.elapsed_ms;
  });
  const etaMs = computed(() => {
    if (!live.value || progress.eta_ms === null) return null;
    return Math.max(0, progress.eta_ms - Math.max(0, now.value - progressAt));
  });

  function startTicker() {
    clearInterval(ticker);
    ticker = setInterval(() => {
      now.value = Date.now();
      if (!live.value) clearInterval(ticker);
    }, 250);
  }

  function resetState() {
    text.value = '';
    error.value = null;
    info.value = '';
    infos.value = [];
    resetReason.value = '';
    run.value = null;
    shots.value = [];
    movements.value = [];
    tasks.value = {};
    items.value = {};
    Object.assign(progress, EMPTY_PROGRESS);
    progressAt = 0;
    startedAt = 0;
    finishedReported = false;
  }

  function finish(next: RunPhase) {
    phase.value = next;
    clearInterval(ticker);
    now.value = Date.now();
    if (!finishedReported) {
      finishedReported = true;
      options.onFinished?.(next, run.value);
    }
  }

  function onEvent(event: RunEvent) {
    switch (event.type) {
      case 'token':
        text.value += event.content;
        if (phase.value === 'queued' || phase.value === 'connecting') phase.value = 'running';
        break;
      case 'reset':
        // The server restarts the answer (failover, or a replay from the saved run): start over.
        text.value = '';
        shots.value = [];
        movements.value = [];
        tasks.value = {};
        items.value = {};
        resetReason.value = event.reason;
        break;
      case 'progress':
        Object.assign(progress, {
          tokens: event.tokens ?? progress.tokens,
          tokens_per_s: event.tokens_per_s ?? progress.tokens_per_s,
          elapsed_ms: event.elapsed_ms,
          eta_ms: event.eta_ms ?? null,
          done: event.done ?? progress.done,
          total: event.total ?? progress.total,
          percent: event.percent ?? progress.percent,
          step: event.step ?? progress.step,
        });
        progressAt = Date.now();
        break;
      case 'stage_update':
        switch (event.status) {
          case 'queued':
          case 'pending':
            phase.value = 'queued';
            break;
          case 'running':
            phase.value = 'running';
            break;
          case 'cancelled':
          case 'interrupted':
          case 'failed':
          case 'completed':
            finish(event.status);
            break;
          case 'skipped':
            break;
        }
        break;
      case 'info':
        info.value = event.message;
        // A replay after a reconnect repeats what was already said: keep each note once.
        if (!infos.value.some((i) => i.message === event.message)) infos.value = [...infos.value, { message: event.message, code: event.code, params: event.params }];
        break;
      case 'shot':
        shots.value = [...shots.value.filter((s) => s.sequence_number !== event.shot.sequence_number), event.shot];
        break;
      case 'movement':
        movements.value = [...movements.value.filter((m) => m.sequence_number !== event.movement.sequence_number), event.movement];
        break;
      case 'task':
        tasks.value = {
          ...tasks.value,
          [event.shot_id]: { status: event.status, percent: event.percent ?? null, message: event.message ?? null, position: event.position ?? null },
        };
        break;
      case 'image':
        items.value = { ...items.value, [event.shot_id]: event.image };
        break;
      case 'audio':
        items.value = { ...items.value, [event.shot_id]: event.audio };
        break;
      case 'clip':
        items.value = { ...items.value, [event.shot_id]: event.clip };
        break;
      case 'done':
        // Media stages finish with an output and no text: keep what was written.
        text.value = event.full_text ?? text.value;
        run.value = event.run;
        if (event.run.usage) {
          progress.tokens = event.run.usage.completion_tokens || progress.tokens;
          if (event.run.usage.duration_ms !== null) {
            progress.elapsed_ms = event.run.usage.duration_ms;
            progressAt = 0;
          }
        }
        progress.eta_ms = null;
        finish('completed');
        break;
      case 'error':
        error.value = { message: event.message, code: event.code, retryable: event.retryable };
        finish('failed');
        break;
      default: {
        const unhandled: never = event;
        console.warn('[run] unhandled event', unhandled);
      }
    }
  }

  /** Reads the run's saved state, for when the stream cannot tell (it ended early, or answered 204). */
  async function syncFromServer(id: string) {
    try {
      const saved = await http.get<Run>(`/runs/${id}/`);
      if (runId.value !== id) return;
      run.value = saved;
      if (saved.text && saved.text.length >= text.value.length) text.value = saved.text;
      if (saved.error) error.value = saved.error;
      if (saved.status !== 'running' && saved.status !== 'queued') finish(saved.status);
    } catch (err) {
      if (runId.value !== id) return;
      error.value = { message: isApiError(err) ? err.message : String(err), code: isApiError(err) ? err.code : 'network_error', retryable: true };
      finish('failed');
    }
  }

  /** Follows a run from its beginning (the server replays the text so far). */
  function attach(id: string, opts: { startedAt?: string | null } = {}) {
    detach();
    resetState();
    runId.value = id;
    phase.value = 'connecting';
    startedAt = opts.startedAt ? new Date(opts.startedAt).getTime() : Date.now();
    now.value = Date.now();
    startTicker();

    // The stream reports its first state synchronously, before `openEventStream` returns: compare
    // against a token set beforehand rather than the handle.
    const token = {};
    current = token;
    const h = openEventStream({
      path: `/runs/${id}/events`,
      schema: RunEvent,
      isTerminal: isTerminalEvent,
      onEvent: (event) => {
        if (current === token) onEvent(event);
      },
      onState: (state) => {
        if (current !== token) return;
        connection.value = state;
        if (state === 'open' && phase.value === 'connecting') phase.value = 'running';
      },
    });
    handle = h;
    void h.done.then((end) => {
      if (current !== token) return;
      if (end.reason === 'closed' || (end.reason === 'terminal' && !live.value)) return;
      // 204, a refused stream, or too many failed reconnects: ask for the run itself.
      void syncFromServer(id);
    });
  }

  function detach() {
    const h = handle;
    handle = null;
    current = null;
    h?.close();
    connection.value = 'idle';
    clearInterval(ticker);
  }

  /** Forget the current run (e.g. the project changed). */
  function clear() {
    detach();
    resetState();
    runId.value = null;
    phase.value = 'idle';
  }

  // A component's scope or a test's effectScope alike: leaving it closes the connection.
  onScopeDispose(detach);

  return { runId, text, phase, live, connection, progress, elapsedMs, etaMs, error, info, infos, resetReason, run, shots, movements, tasks, items, attach, detach, clear };
}
