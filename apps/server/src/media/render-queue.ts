/**
 * The studio's one queue for local CPU renders (MEDIA_CONCURRENCY, DESIGN §9). Fair between projects:
 * when a slot frees, projects with waiting tasks take turns (round robin), so one project's sixty
 * clips cannot hold back another project's single clip for the whole batch.
 */
import { MediaAbortError } from './ffmpeg.ts';

export type RenderTask<T> = (signal: AbortSignal) => Promise<T>;

export interface RenderQueueRunOptions {
  /** Aborting removes a waiting task (it never starts); a running task receives the same signal. */
  signal?: AbortSignal;
  /** Place in line as it changes: 1 = next to start. Not called once the task is running. */
  onPosition?: (position: number) => void;
}

interface Waiting {
  projectId: string;
  start: () => void;
  onPosition?: (position: number) => void;
  lastPosition: number;
}

const NEVER_ABORTED = new AbortController().signal;

export class RenderQueue {
  private running = 0;
  /** Waiting tasks per project, oldest first. */
  private readonly waiting = new Map<string, Waiting[]>();
  /** Projects with waiting tasks in turn order; the head goes next. */
  private readonly turns: string[] = [];

  constructor(readonly concurrency: number) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a positive integer, not ${concurrency}`);
  }

  get runningCount(): number {
    return this.running;
  }

  get waitingCount(): number {
    let n = 0;
    for (const list of this.waiting.values()) n += list.length;
    return n;
  }

  run<T>(projectId: string, task: RenderTask<T>, opts: RenderQueueRunOptions = {}): Promise<T> {
    const signal = opts.signal ?? NEVER_ABORTED;
    if (signal.aborted) return Promise.reject(new MediaAbortError('The render was cancelled before it started', { cause: signal.reason }));
    return new Promise<T>((resolve, reject) => {
      const execute = () => {
        this.running++;
        let result: Promise<T>;
        try {
          result = task(signal);
        } catch (err) {
          result = Promise.reject(err);
        }
        result.then(resolve, reject).finally(() => {
          this.running--;
          this.dispatch();
        });
      };
      if (this.running < this.concurrency && this.waitingCount === 0) return execute();

      const onAbort = () => {
        this.remove(entry);
        reject(new MediaAbortError('The render was cancelled while waiting', { cause: signal.reason }));
      };
      const entry: Waiting = {
        projectId,
        onPosition: opts.onPosition,
        lastPosition: 0,
        start: () => {
          signal.removeEventListener('abort', onAbort);
          execute();
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      let list = this.waiting.get(projectId);
      if (!list) {
        this.waiting.set(projectId, (list = []));
        this.turns.push(projectId);
      }
      list.push(entry);
      this.announcePositions();
    });
  }

  private remove(entry: Waiting): void {
    const list = this.waiting.get(entry.projectId);
    const index = list?.indexOf(entry) ?? -1;
    if (!list || index < 0) return;
    list.splice(index, 1);
    if (list.length === 0) {
      this.waiting.delete(entry.projectId);
      this.turns.splice(this.turns.indexOf(entry.projectId), 1);
    }
    this.announcePositions();
  }

  private dispatch(): void {
    while (this.running < this.concurrency && this.turns.length > 0) {
      const projectId = this.turns.shift()!;
      const list = this.waiting.get(projectId)!;
      const entry = list.shift()!;
      if (list.length > 0) this.turns.push(projectId);
      else this.waiting.delete(projectId);
      entry.start();
    }
    this.announcePositions();
  }

  /** The order tasks will start in if nothing else arrives: one from each project in turn. */
  private startOrder(): Waiting[] {
    const order: Waiting[] = [];
    const lists = this.turns.map((id) => this.waiting.get(id)!);
    const total = this.waitingCount;
    for (let round = 0; order.length < total; round++) {
      for (const list of lists) if (round < list.length) order.push(list[round]);
    }
    return order;
  }

  private announcePositions(): void {
    const order = this.startOrder();
    order.forEach((entry, i) => {
      if (entry.lastPosition !== i + 1) {
        entry.lastPosition = i + 1;
        entry.onPosition?.(i + 1);
      }
    });
  }
}
