import type { FastifyBaseLogger } from 'fastify';
import type { StreamEnding } from '../auth/live-streams.ts';
import type { Config } from '../config.ts';
import { connectRedis } from '../redis/connection.ts';
import { runKey } from './publisher.ts';
import { RedisEventLog, RedisStreamReader } from './redis-event-log.ts';

/** How long a cancel from another instance waits for the run's owner to save and announce its end. */
const CANCEL_WAIT_MS = 15_000;

/** Reaches runs held by other instances (scale-out mode); the run service uses it when a run is not its own. */
export interface RemoteRuns {
  /** Asks the owner to cancel the run; resolves once the run has ended (or the wait ran out). */
  cancel(runId: string): Promise<void>;
  /** Called with a run id when some instance asks for it to be cancelled. */
  onCancel(handler: (runId: string) => void): void;
}

/**
 * The Redis pieces of scale-out mode for runs: the run and project event logs (streams), one reader
 * for both, and the cancel channel. Four connections per instance whatever the number of followers:
 * commands, the blocking reader, and publish/subscribe (a subscribed connection does nothing else).
 */
export class RedisRunEvents implements RemoteRuns {
  readonly runLog: RedisEventLog;
  readonly projectLog: RedisEventLog;
  private readonly redis;
  private readonly blocking;
  private readonly subscriber;
  private readonly reader: RedisStreamReader;
  /** Pub/sub channels are not prefixed by the connection: the prefix is written into the name. */
  private readonly cancelChannel: string;
  private cancelHandler: (runId: string) => void = () => {};
  /** Sign-outs and revocations: a user's streams on every instance end with their credential. */
  private readonly streamEndChannel: string;
  private streamEndHandler: (ending: StreamEnding) => void = () => {};
  /** Users whose credentials or role changed: every instance forgets what it remembered of them. */
  private readonly userChangeChannel: string;
  private userChangeHandler: (userId: string) => void = () => {};
  /** Projects someone may have lost access to: every instance's open streams of them re-check their readers. */
  private readonly projectAccessChannel: string;
  private projectAccessHandler: (projectId: string) => void = () => {};

  constructor(
    config: Pick<Config, 'redisUrl' | 'redisPrefix'>,
    private readonly log: FastifyBaseLogger,
  ) {
    const url = config.redisUrl!;
    const prefix = config.redisPrefix;
    this.redis = connectRedis({ url, prefix, name: 'events' });
    this.blocking = connectRedis({ url, prefix, name: 'events-reader', blocking: true });
    this.subscriber = connectRedis({ url, prefix, name: 'events-control', blocking: true });
    for (const c of [this.redis, this.blocking, this.subscriber]) c.on('error', (err) => log.warn({ err }, 'Redis connection error'));
    this.reader = new RedisStreamReader(this.blocking, this.redis, prefix, log);
    this.runLog = new RedisEventLog({ redis: this.redis, reader: this.reader, ids: 'writer', maxEvents: 100_000, log });
    this.projectLog = new RedisEventLog({ redis: this.redis, reader: this.reader, ids: 'redis', maxEvents: 5_000, log });
    this.cancelChannel = `${prefix}runs:cancel`;
    this.streamEndChannel = `${prefix}streams:end`;
    this.userChangeChannel = `${prefix}users:changed`;
    this.projectAccessChannel = `${prefix}projects:access`;
    this.subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.cancelChannel) this.cancelHandler(message);
      else if (channel === this.streamEndChannel) this.streamEndHandler(JSON.parse(message) as StreamEnding);
      else if (channel === this.userChangeChannel) this.userChangeHandler(message);
      else if (channel === this.projectAccessChannel) this.projectAccessHandler(message);
    });
  }

  /** Resolves once the control channels are subscribed (a message published before would be missed). */
  async start() {
    await this.subscriber.subscribe(this.cancelChannel, this.streamEndChannel, this.userChangeChannel, this.projectAccessChannel);
  }

  /** Tells every instance (this one too: ending twice changes nothing) to end the streams of a credential or user. */
  endStreams(ending: StreamEnding) {
    void this.redis.publish(this.streamEndChannel, JSON.stringify(ending)).catch((err: unknown) => this.log.warn({ err }, 'could not tell the other instances to end streams'));
  }

  onStreamEnding(handler: (ending: StreamEnding) => void) {
    this.streamEndHandler = handler;
  }

  /** Tells every instance that a user's credentials or role changed. */
  userChanged(userId: string) {
    void this.redis.publish(this.userChangeChannel, userId).catch((err: unknown) => this.log.warn({ err }, 'could not tell the other instances that a user changed'));
  }

  onUserChanged(handler: (userId: string) => void) {
    this.userChangeHandler = handler;
  }

  /** Tells every instance that someone may have lost access to a project (a member removed, the project deleted). */
  projectAccessChanged(projectId: string) {
    void this.redis.publish(this.projectAccessChannel, projectId).catch((err: unknown) => this.log.warn({ err }, 'could not tell the other instances that access to a project changed'));
  }

  onProjectAccessChanged(handler: (projectId: string) => void) {
    this.projectAccessHandler = handler;
  }

  onCancel(handler: (runId: string) => void) {
    this.cancelHandler = handler;
  }

  async cancel(runId: string) {
    const key = runKey(runId);
    // Follow the run's stream first, so its terminal event cannot pass before we listen.
    await this.runLog.attach(key, true);
    const ended = new Promise<void>((resolve) => {
      if (this.runLog.isClosed(key)) return resolve();
      const timer = setTimeout(done, CANCEL_WAIT_MS);
      const stop = this.runLog.subscribe(key, (e) => e.terminal && done());
      function done() {
        clearTimeout(timer);
        stop();
        resolve();
      }
    });
    await this.redis.publish(this.cancelChannel, runId);
    await ended;
  }

  /** Writes what is queued, then closes every connection. */
  async close() {
    await this.runLog.close();
    await this.projectLog.close();
    await this.reader.close();
    this.subscriber.disconnect();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

