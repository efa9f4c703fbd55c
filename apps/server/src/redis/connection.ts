import type { Redis } from 'ioredis';
import { onFirstUse } from '../on-first-use.ts';

/** Only scale-out mode talks to Redis. */
export const ioredis = onFirstUse<typeof import('ioredis')>('ioredis');

export interface RedisOptions {
  url: string;
  /** Every key this studio writes starts with it: several studios (or test runs) can share one Redis. */
  prefix: string;
  /** Shown by `CLIENT LIST`, so an operator can tell the studio's connections apart. */
  name: string;
  /** Blocking readers (XREAD BLOCK) must not fail a command that waits longer than a reconnect. */
  blocking?: boolean;
}

/**
 * One Redis connection for scale-out mode. Commands issued while Redis is briefly away are queued
 * and retried on reconnect; a blocking reader gets a connection of its own (a blocked connection
 * serves nobody else).
 */
export function connectRedis(opts: RedisOptions): Redis {
  return new (ioredis().Redis)(opts.url, {
    connectionName: `ai-story:${opts.name}`,
    keyPrefix: opts.prefix,
    maxRetriesPerRequest: opts.blocking ? null : 20,
    enableAutoPipelining: !opts.blocking,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
  });
}

/** Scale-out mode asked for a Redis that does not answer: the studio says so instead of waiting. */
export class RedisUnreachableError extends Error {}

/** The URL as an operator may see it in a log: any password replaced. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(an unparseable URL)';
  }
}

/**
 * On start-up: one PING with no retries. A studio whose Redis is down would otherwise queue every
 * command and wait for it without a word; at start-up nothing depends on it yet, so it stops instead.
 */
export async function assertRedisReachable(url: string, timeoutMs: number): Promise<void> {
  const probe = new (ioredis().Redis)(url, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  // The socket's own error (ECONNREFUSED, ETIMEDOUT …) says more than the "Connection is closed" that follows it.
  let cause: Error | undefined;
  probe.on('error', (err: Error) => (cause ??= err));
  try {
    await probe.connect();
    await probe.ping();
  } catch (err) {
    const why = (cause ?? (err as Error)).message.replace(/\.$/, '');
    throw new RedisUnreachableError(
      `Redis at ${redactedUrl(url)} (REDIS_URL) did not answer: ${why}. ` +
        'Start it (apt-get install -y redis-server; service redis-server start), or unset REDIS_URL to run a single studio.',
    );
  } finally {
    probe.disconnect();
  }
}
