import { Redis } from 'ioredis';

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
  return new Redis(opts.url, {
    connectionName: `ai-story:${opts.name}`,
    keyPrefix: opts.prefix,
    maxRetriesPerRequest: opts.blocking ? null : 20,
    enableAutoPipelining: !opts.blocking,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
  });
}
