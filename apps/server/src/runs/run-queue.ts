import type { Queue, Worker } from 'bullmq';
import type { FastifyBaseLogger } from 'fastify';
import { onFirstUse } from '../on-first-use.ts';
import { ioredis } from '../redis/connection.ts';

const bullmq = onFirstUse<typeof import('bullmq')>('bullmq');

/** What a worker needs to execute a run the API has validated and saved as `queued`. */
export interface RunJob {
  runId: string;
  userId: string;
  /** The providers to try, in order (chosen when the run was started: limits and strategy applied there). */
  providerIds: string[];
}

const QUEUE = 'runs';

/** BullMQ keys go under the studio's prefix; BullMQ adds its own separator and refuses an ioredis keyPrefix. */
const bullPrefix = (prefix: string) => `${prefix}bull`;

/** BullMQ wants connections that retry forever (a worker's blocking reads would fail otherwise). */
const connect = (url: string) => new (ioredis().Redis)(url, { maxRetriesPerRequest: null, connectionName: 'ai-story:runs-queue' });

/**
 * Scale-out with workers (`RUNS_IN=workers`): an API instance puts each run it starts in this queue,
 * and a worker process (`npm run worker`) executes it. One job per run, its id the run's id.
 */
export class RunQueue {
  private readonly queue: Queue<RunJob>;

  constructor(url: string, prefix: string) {
    this.queue = new (bullmq().Queue<RunJob>)(QUEUE, { connection: connect(url), prefix: bullPrefix(prefix) });
  }

  async add(job: RunJob) {
    // A job is done with once handled: the run's row is the record, so nothing piles up in Redis.
    await this.queue.add('run', job, { jobId: job.runId, removeOnComplete: true, removeOnFail: 1_000 });
  }

  close = () => this.queue.close();
}

export interface RunWorkerOptions {
  url: string;
  prefix: string;
  /** Runs executed at once by this process. */
  concurrency: number;
  /** A job whose worker stopped renewing its lock this long ago is stalled and handed out again. */
  lockMs: number;
  log: FastifyBaseLogger;
}

/** The worker side: takes jobs and hands each to `execute`, which resolves once the run has ended. */
export class RunWorker {
  private readonly worker: Worker<RunJob>;

  constructor(o: RunWorkerOptions, execute: (job: RunJob) => Promise<void>) {
    this.worker = new (bullmq().Worker<RunJob>)(QUEUE, (job) => execute(job.data), {
      connection: connect(o.url),
      prefix: bullPrefix(o.prefix),
      concurrency: o.concurrency,
      lockDuration: o.lockMs,
      // A run is never executed twice: a stalled job is offered once more, and the run it names, still
      // `running` under a dead owner, is left to the orphan sweep (which ends it `interrupted`).
      maxStalledCount: 1,
    });
    this.worker.on('failed', (job, err) => o.log.warn({ err, runId: job?.data.runId }, 'a run job failed'));
    this.worker.on('error', (err) => o.log.warn({ err }, 'run worker error'));
  }

  /** Stops taking jobs and waits for the ones in hand (their runs are being stopped by the run service). */
  close = () => this.worker.close();
}
