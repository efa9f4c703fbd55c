/**
 * The studio's one queue for local CPU renders (MEDIA_CONCURRENCY, DESIGN §9). Fair between projects:
 * when a slot frees, projects with waiting tasks take turns (round robin), so one project's sixty
 * clips cannot hold back another project's single clip for the whole batch. Within a project, tasks
 * start in storyboard order: a shot takes its place (`reserve`) before it prepares its render, so a
 * later shot that is ready first does not go ahead of it.
 */
import { MediaAbortError } from './ffmpeg.ts';

export type RenderTask<T> = (signal: AbortSignal) => Promise<T>;

export interface RenderQueueRunOptions {
  /** Aborting removes a waiting task (it never starts); a running task receives the same signal. */
  signal?: AbortSignal;
  /** Place in line as it changes: 1 = next to start. Not called once the task is running. */
  onPosition?: (position: number) => void;
}

/** A place in a project's line, taken before its task is known: `run` it, or `release` it. */
export interface RenderPlace {
  /** Runs `task` from this place (once released, from a new place at the same order). */
  run<T>(task: RenderTask<T>, opts?: RenderQueueRunOptions): Promise<T>;
  /** Gives the place up, if its task has not been given: the tasks behind it move up. */
  release(): void;
}

interface Waiting {
  projectId: string;
  order: number;
  /** Unset while the place is only reserved: the project's later tasks wait behind it. */
  start?: () => void;
  onPosition?: (position: number) => void;
  lastPosition: number;
}

const NEVER_ABORTED = new AbortController().signal;

export class RenderQueue {
  private running = 0;
  /** Waiting tasks per project, in their order (then oldest first). */
  private readonly waiting = new Map<string, Waiting[]>();
  /** Projects with waiting tasks in turn order; the first whose next task is ready goes next. */
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

  /** Runs `task` when its turn comes, after every task of the project already in line. */
  run<T>(projectId: string, task: RenderTask<T>, opts: RenderQueueRunOptions = {}): Promise<T> {
    return this.give(this.enqueue(projectId, Infinity), task, opts);
  }

  /**
   * Takes a place in `projectId`'s line at `order` now, for a task given later (`RenderPlace.run`):
   * until then, or until it is released, the project's tasks with a larger order wait behind it.
   * Whoever reserves must run or release the place, whatever happens, or that project's line stops.
   */
  reserve(projectId: string, order: number): RenderPlace {
    let entry: Waiting | undefined = this.enqueue(projectId, order);
    this.announcePositions();
    return {
      run: (task, opts = {}) => {
        const place = entry ?? this.enqueue(projectId, order);
        entry = undefined;
        return this.give(place, task, opts);
      },
      release: () => {
        if (!entry) return;
        this.remove(entry);
        entry = undefined;
        this.dispatch();
      },
    };
  }

  private execute<T>(task: RenderTask<T>, signal: AbortSignal, resolve: (value: T) => void, reject: (err: unknown) => void) {
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
  }

  /** A waiting entry at its place in its project's line (after those of the same order). */
  private enqueue(projectId: string, order: number): Waiting {
    const entry: Waiting = { projectId, order, lastPosition: 0 };
    let list = this.waiting.get(projectId);
    if (!list) {
      this.waiting.set(projectId, (list = []));
      this.turns.push(projectId);
    }
    const behind = list.findIndex((w) => w.order > order);
    list.splice(behind < 0 ? list.length : behind, 0, entry);
    return entry;
  }

  /** Gives a waiting entry its task: it starts when its turn comes. */
  private give<T>(entry: Waiting, task: RenderTask<T>, opts: RenderQueueRunOptions): Promise<T> {
    const signal = opts.signal ?? NEVER_ABORTED;
    return new Promise<T>((resolve, reject) => {
      if (signal.aborted) {
        this.remove(entry);
        this.dispatch();
        return reject(new MediaAbortError('The render was cancelled before it started', { cause: signal.reason }));
      }
      const onAbort = () => {
        this.remove(entry);
        this.dispatch();
        reject(new MediaAbortError('The render was cancelled while waiting', { cause: signal.reason }));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      entry.onPosition = opts.onPosition;
      entry.start = () => {
        signal.removeEventListener('abort', onAbort);
        this.execute(task, signal, resolve, reject);
      };
      this.dispatch();
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
  }

  private dispatch(): void {
    while (this.running < this.concurrency) {
      // A project whose next place is still only reserved lets the others go, and keeps its turn.
      const turn = this.turns.findIndex((id) => this.waiting.get(id)![0].start);
      if (turn < 0) break;
      const [projectId] = this.turns.splice(turn, 1);
      const list = this.waiting.get(projectId)!;
      const entry = list.shift()!;
      if (list.length > 0) this.turns.push(projectId);
      else this.waiting.delete(projectId);
      entry.start!();
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
    this.startOrder().forEach((entry, i) => {
      if (entry.onPosition && entry.lastPosition !== i + 1) {
        entry.lastPosition = i + 1;
        entry.onPosition(i + 1);
      }
    });
  }
}
