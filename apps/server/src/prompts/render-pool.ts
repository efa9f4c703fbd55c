import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { unavailable } from '../errors.ts';
import { workerModule } from '../worker-module.ts';
import type { Template } from 'liquidjs';
import type { RenderTask } from './render-worker.ts';
import { engine, failed, TemplateError, TemplateLimitError, type RenderResult } from './render.ts';

export interface RenderLimits {
  /** A render still running this long after it began is stopped by ending its worker. */
  timeMs: number;
  /** Heap of one render worker: a template that builds more than this ends its worker. */
  heapMb: number;
  /** Renders at once (one worker each). */
  threads: number;
  /** Renders waiting for a worker; beyond this a render answers 503. */
  queue: number;
}

// liquidjs stops a render itself after 1 s (render.ts), but it looks at the clock only between the nodes
// it renders: `{% for i in (1..9999999) %}{% endfor %}` never looks. The hard limit ends such a render.
// liquidjs also counts the strings and ranges a template builds (render.ts keeps that count well under
// the heap); the heap limit bounds what it does not, where V8 can end the worker alone.
const DEFAULT_LIMITS: RenderLimits = { timeMs: 3_000, heapMb: 64, threads: Math.min(2, availableParallelism()), queue: 64 };

const WORKER = workerModule('render-worker', import.meta.url);

/**
 * Renders user templates off the event loop (issue 15, finding 1): a runaway template costs a worker
 * thread, never the server's answers. A render that passes the time or heap limit has its worker
 * ended and replaced, and fails with a TemplateLimitError naming the template.
 */
export class TemplateRenderer {
  private readonly limits: RenderLimits;
  private pool?: Piscina<RenderTask, RenderResult>;
  private readonly running = new Map<number, { abort: AbortController; timer?: NodeJS.Timeout }>();
  private nextId = 1;
  private readonly trusted = new Map<string, Template[]>();
  /** Renders taken or waiting (tests watch the pool fill). */
  inFlight = 0;
  /** Renders stopped by ending their worker. */
  killed = 0;
  /** Renders handed to a worker (the studio's own templates render here). */
  sentToWorkers = 0;

  constructor(limits: Partial<RenderLimits> = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  /**
   * Renders `content` with `variables`; `name` says which template it is in an error ("the rewrite
   * template of “My set”"). Throws TemplateLimitError when a limit stopped it, TemplateError otherwise.
   */
  async render(content: string, variables: Record<string, unknown>, name: string): Promise<string> {
    // Plain text has nothing to render: it needs no worker (a cheap path for the common case).
    if (!content.includes('{{') && !content.includes('{%')) return content.trim();
    const ours = this.trusted.get(content);
    const result = ours ? renderHere(ours, variables) : await this.inWorker(content, variables);
    if ('text' in result) return result.text;
    if (result.limit === 'time') throw new TemplateLimitError(`Rendering ${name} took too long and was stopped; simplify its loops`, 'time');
    if (result.limit === 'memory') throw new TemplateLimitError(`Rendering ${name} needed too much memory and was stopped; use smaller ranges and loops`, 'memory');
    throw new TemplateError(`The prompt template could not be rendered: ${result.error}`);
  }

  /**
   * The studio's own templates (the shipped ones, as written): bounded by us, so they render here,
   * without a worker's round trip on every run start. A user's templates keep their sandbox.
   */
  trust(contents: string[]) {
    for (const content of contents) this.trusted.set(content, engine.parse(content));
  }

  private async inWorker(content: string, variables: Record<string, unknown>): Promise<RenderResult> {
    const id = this.nextId++;
    const abort = new AbortController();
    const render: { abort: AbortController; timer?: NodeJS.Timeout } = { abort };
    this.running.set(id, render);
    this.inFlight++;
    this.sentToWorkers++;
    let result: RenderResult;
    try {
      result = await this.workers().run({ id, content, variables }, { signal: abort.signal });
    } catch (err) {
      if (/queue is at limit/i.test((err as Error).message)) throw unavailable('Too many templates are being rendered right now; try again in a moment', 5);
      const stopped = abort.signal.aborted ? 'time' : (err as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'memory' : null;
      if (!stopped) throw err;
      this.killed++;
      result = { error: 'stopped', limit: stopped };
    } finally {
      // A late abort would end whichever render the worker has taken up next.
      clearTimeout(render.timer);
      this.running.delete(id);
      this.inFlight--;
    }
    return result;
  }

  /**
   * Starts the pool's worker now rather than at the first render: a served studio will render, and its
   * first run should not wait ~0.3 s for a thread to boot. (Tests that build many studios skip this.)
   */
  warm() {
    this.workers();
  }

  close() {
    return this.pool?.destroy();
  }

  /** Started at the first render, or by warm(). */
  private workers() {
    if (this.pool) return this.pool;
    this.pool = new Piscina<RenderTask, RenderResult>({
      filename: WORKER.url.href,
      execArgv: WORKER.execArgv,
      // One stays (its parsed templates with it); at least one, because only a live worker takes up
      // the queue again after another was ended.
      minThreads: 1,
      maxThreads: this.limits.threads,
      maxQueue: this.limits.queue,
      idleTimeout: 60_000,
      resourceLimits: { maxOldGenerationSizeMb: this.limits.heapMb, maxYoungGenerationSizeMb: Math.max(1, Math.floor(this.limits.heapMb / 8)) },
    });
    // A worker that dies between renders is replaced by the pool; no render waits for it.
    this.pool.on('error', () => {});
    // The clock starts when a worker begins the render, not while it waits in the queue behind others.
    this.pool.on('message', (message: { renderStarted?: number }) => {
      const render = message?.renderStarted !== undefined ? this.running.get(message.renderStarted) : undefined;
      if (render) render.timer = setTimeout(() => render.abort.abort(), this.limits.timeMs);
    });
    return this.pool;
  }
}

function renderHere(templates: Template[], variables: Record<string, unknown>): RenderResult {
  try {
    return { text: (engine.renderSync(templates, variables) as string).trim() };
  } catch (err) {
    return failed(err);
  }
}
