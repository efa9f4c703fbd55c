import os from 'node:os';
import type { FastifyBaseLogger } from 'fastify';
import type { InstanceRow } from '../db/schema.ts';
import type { InstanceRepository, LeaseMode } from './repository.ts';

/** A second studio on a database that a live one holds (single-instance mode). */
export class InstanceConflictError extends Error {
  constructor(holder: InstanceRow) {
    super(
      `Another AI Story studio (pid ${holder.pid} on ${holder.host}, started ${holder.startedAt.toISOString()}) is using this database; ` +
        'a second one would take over its runs. Stop that studio first, or set REDIS_URL for scale-out mode. ' +
        `If it was killed, start again after its lease runs out at ${holder.expiresAt.toISOString()}.`,
    );
  }
}

/**
 * This process's lease on the database (issue: single-instance guard, and the ownership scale-out
 * builds on). The lease is a row, renewed by a heartbeat with a conditional UPDATE, not a
 * session-level advisory lock: a dropped connection would release such a lock at once and let a
 * second studio in, while a row lease survives an outage shorter than the lease, and is renewed when
 * the database is back. Only another instance's start-up ends a lease, and only once it has expired.
 */
export class InstanceLease {
  private timer?: NodeJS.Timeout;
  private renewing = false;
  private lost = false;

  private constructor(
    private readonly repo: InstanceRepository,
    readonly id: string,
    private readonly leaseMs: number,
    private readonly log: FastifyBaseLogger,
  ) {}

  /** Registers this process; in `single` mode a live lease of another studio is an InstanceConflictError. */
  static async acquire(repo: InstanceRepository, opts: { mode: LeaseMode; leaseMs: number; log: FastifyBaseLogger }) {
    const taken = await repo.register({ host: os.hostname(), pid: process.pid, leaseMs: opts.leaseMs, mode: opts.mode });
    if ('holder' in taken) throw new InstanceConflictError(taken.holder);
    return new InstanceLease(repo, taken.instance.id, opts.leaseMs, opts.log);
  }

  /**
   * Renews the lease three times per lease length, so two missed heartbeats are survived. `onLost` is
   * called once if another instance took the lease over (after it expired during a long outage).
   */
  startHeartbeat(onLost: () => void) {
    this.timer = setInterval(() => void this.heartbeat(onLost), Math.max(100, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
  }

  private async heartbeat(onLost: () => void) {
    if (this.renewing || this.lost) return;
    this.renewing = true;
    try {
      if (await this.repo.renew(this.id, this.leaseMs)) return;
      this.lost = true;
      clearInterval(this.timer);
      this.log.error({ instance: this.id }, 'another studio took over this instance\'s lease after it expired; stopping this instance\'s runs');
      onLost();
    } catch (err) {
      // The database is unreachable: the lease holds until it expires, and the next beat tries again.
      this.log.warn({ err, instance: this.id }, 'could not renew the instance lease');
    } finally {
      this.renewing = false;
    }
  }

  /** On shutdown, after the runs are saved: the next studio need not wait for the lease to expire. */
  async release() {
    clearInterval(this.timer);
    if (this.lost) return;
    await this.repo.release(this.id).catch((err) => this.log.warn({ err }, 'could not release the instance lease; it expires by itself'));
  }
}
