import { randomUUID } from 'node:crypto';
import type { Strategy } from '@ai-story/contracts';
import type { Redis } from 'ioredis';
import { unavailable } from '../errors.ts';
import { DAY, MINUTE, arrange, overDayLimit, overMinuteLimit, pickBy, type Candidate, type EndCall, type Limits, type ProviderLimiter, type Refusal, type Selection, type SelectorOptions } from './selector.ts';

export interface RedisSelectorOptions extends SelectorOptions {
  /** How long a call counts as in flight without a refresh: a crashed instance's calls stop counting then. */
  inFlightTtlMs?: number;
  /** Told when a background write (a call's end, a refresh) failed; the limits heal by expiry. */
  onError?: (err: unknown) => void;
}

/*
 * Keys, per provider id (ioredis adds the studio's REDIS_PREFIX):
 *   limits:{id}:calls     sorted set, one member per call, scored by its start (ms): the last day's calls
 *   limits:{id}:inflight  sorted set, one member per running call, scored by when it stops counting
 *   limits:{id}:failures  hash { count, until }: failures in a row, and the end of a cool-down
 *   limits:cursor:{key}   round_robin's position, shared so the instances take turns together
 * The times come from the caller's clock (instances agree to within their NTP skew, small beside a minute).
 */
const keys = (id: string) => [`limits:${id}:calls`, `limits:${id}:inflight`, `limits:${id}:failures`];

/** Shared by the scripts: why the provider is over a limit ({1|2, retry ms}), or nil. Trims the day window. */
const OVER_LIMIT = `
local function over_limit(calls, now, rpm, rpd)
  redis.call('ZREMRANGEBYSCORE', calls, '-inf', now - ${DAY})
  if rpm > 0 then
    local c = redis.call('ZCOUNT', calls, '(' .. (now - ${MINUTE}), '+inf')
    if c >= rpm then
      local t = redis.call('ZRANGEBYSCORE', calls, '(' .. (now - ${MINUTE}), '+inf', 'WITHSCORES', 'LIMIT', c - rpm, 1)
      return {1, tonumber(t[2]) + ${MINUTE} - now}
    end
  end
  if rpd > 0 then
    local c = redis.call('ZCARD', calls)
    if c >= rpd then
      local t = redis.call('ZRANGE', calls, c - rpd, c - rpd, 'WITHSCORES')
      return {2, tonumber(t[2]) + ${DAY} - now}
    end
  end
  return nil
end
`;

/**
 * What select needs of each provider, in one round trip. KEYS: 3 per provider (calls, inflight, failures);
 * ARGV: now, then rpm and rpd per provider. Answers per provider: limit kind (0 none), retry ms,
 * cool-down end (0 none), calls in flight.
 */
const STATE = `${OVER_LIMIT}
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS / 3 do
  local calls, inflight, failures = KEYS[i * 3 - 2], KEYS[i * 3 - 1], KEYS[i * 3]
  local limit = over_limit(calls, now, tonumber(ARGV[i * 2]), tonumber(ARGV[i * 2 + 1])) or {0, 0}
  local untilAt = tonumber(redis.call('HGET', failures, 'until') or '0')
  if untilAt <= now then untilAt = 0 end
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
  table.insert(out, {limit[1], limit[2], untilAt, redis.call('ZCARD', inflight)})
end
return out
`;

/**
 * Checks the limits and counts the call in one step, so two instances cannot both take the last slot.
 * KEYS: calls, inflight; ARGV: now, rpm, rpd, call id, in-flight deadline.
 */
const BEGIN = `${OVER_LIMIT}
local now = tonumber(ARGV[1])
local limit = over_limit(KEYS[1], now, tonumber(ARGV[2]), tonumber(ARGV[3]))
if limit then return limit end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], ${DAY})
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
-- Only to collect a forgotten key: members are counted by their own deadlines.
redis.call('PEXPIRE', KEYS[2], ${DAY})
return {0, 0}
`;

/**
 * Ends a call. KEYS: inflight, failures; ARGV: call id, outcome, now, failure threshold, cool-down ms.
 * A failure record is dropped after a day without failures (a row of faults a day apart is no row).
 */
const END = `
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[2] == 'ok' then
  redis.call('DEL', KEYS[2])
  return 0
end
local count = redis.call('HINCRBY', KEYS[2], 'count', 1)
if count >= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[2], 'until', tonumber(ARGV[3]) + tonumber(ARGV[5]), 'count', 0)
end
redis.call('PEXPIRE', KEYS[2], ${DAY})
return count
`;

/** Keeps this instance's running calls counted: pushes their deadlines on (XX: only calls not ended meanwhile). */
const REFRESH = `
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', ARGV[1], ARGV[i + 1])
end
return #KEYS
`;

type Scripted = Redis & {
  limitsState(...args: (string | number)[]): Promise<[number, number, number, number][]>;
  limitsBegin(...args: (string | number)[]): Promise<[number, number]>;
  limitsEnd(...args: (string | number)[]): Promise<number>;
  limitsRefresh(...args: (string | number)[]): Promise<number>;
};

/**
 * The selector of scale-out mode: the same contract as ProviderSelector, with its state in Redis, so a
 * limit of N per minute lets N calls through across all instances together, a provider cooling down
 * on one instance is cooling down on all, and least_loaded sees every instance's calls in flight.
 * Calls in flight carry a deadline that this instance refreshes while they run: the counts of an
 * instance that crashed fall away on their own.
 */
export class RedisProviderSelector implements ProviderLimiter {
  private readonly redis: Scripted;
  private readonly failureThreshold: number;
  private readonly cooldownMs: number;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly ttlMs: number;
  private readonly onError: (err: unknown) => void;
  /** This instance's running calls: call id → its in-flight key. */
  private readonly running = new Map<string, string>();
  private readonly refresher: NodeJS.Timeout;

  constructor(redis: Redis, opts: RedisSelectorOptions = {}) {
    this.failureThreshold = opts.failureThreshold ?? 3;
    this.cooldownMs = opts.cooldownMs ?? 60_000;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.ttlMs = opts.inFlightTtlMs ?? 30_000;
    this.onError = opts.onError ?? (() => {});
    // defineCommand is per connection object; a second selector on the same connection redefines the same scripts.
    redis.defineCommand('limitsState', { lua: STATE });
    redis.defineCommand('limitsBegin', { lua: BEGIN, numberOfKeys: 2 });
    redis.defineCommand('limitsEnd', { lua: END, numberOfKeys: 2 });
    redis.defineCommand('limitsRefresh', { lua: REFRESH });
    this.redis = redis as Scripted;
    this.refresher = setInterval(() => this.refresh(), Math.max(1, Math.floor(this.ttlMs / 3)));
    this.refresher.unref();
  }

  async select<T extends Candidate>(candidates: T[], strategy: Strategy, key = 'default'): Promise<Selection<T>> {
    const now = this.now();
    const checked = candidates.filter((c) => c.isActive);
    const [state, cursor] = await Promise.all([
      checked.length
        ? this.redis.limitsState(checked.length * 3, ...checked.flatMap((c) => keys(c.id)), now, ...checked.flatMap((c) => [c.rateLimitRpm ?? 0, c.rateLimitRpd ?? 0]))
        : [],
      // Only round_robin moves the shared cursor; it moves even when nothing is usable (harmless: a turn is skipped).
      strategy === 'round_robin' && checked.length ? this.redis.incr(`limits:cursor:${key}`) : 0,
    ]).catch((err: unknown) => {
      // Without the shared counts no instance may call a provider: limits could not hold.
      this.onError(err);
      throw unavailable('The shared provider limits cannot be read (Redis is unreachable); try again shortly', 5);
    });
    const byId = new Map(checked.map((c, i) => [c.id, state[i]]));
    return arrange(
      candidates,
      now,
      {
        refusal: (c) => (c.isActive ? refusalOf(c, byId.get(c.id)!) : { reason: 'inactive' }),
        coolingUntil: (id) => byId.get(id)![2] || null,
      },
      (usable) => pickBy(strategy, usable, { cursor: () => cursor - 1, inFlight: (id) => byId.get(id)![3], random: this.random }),
    );
  }

  /** Counts a call; with limits, only if the provider is under them (checked and counted in one script). */
  async begin(id: string, limits: Limits = { rateLimitRpm: null, rateLimitRpd: null }): Promise<EndCall | Refusal> {
    const call = randomUUID();
    const [calls, inflight, failures] = keys(id);
    const now = this.now();
    const [kind, retryAfterMs] = await this.redis.limitsBegin(calls, inflight, now, limits.rateLimitRpm ?? 0, limits.rateLimitRpd ?? 0, call, now + this.ttlMs);
    if (kind === 1) return overMinuteLimit(limits.rateLimitRpm!, retryAfterMs);
    if (kind === 2) return overDayLimit(limits.rateLimitRpd!, retryAfterMs);
    this.running.set(call, inflight);
    let ended = false;
    return (outcome) => {
      if (ended) return;
      ended = true;
      this.running.delete(call);
      // The caller does not wait: Redis applies a connection's commands in order, so the next select sees it.
      this.redis.limitsEnd(inflight, failures, call, outcome, this.now(), this.failureThreshold, this.cooldownMs).catch(this.onError);
    };
  }

  /** Calls in flight on every instance (tests and the operator's view). */
  async inFlight(id: string): Promise<number> {
    const inflight = keys(id)[1];
    await this.redis.zremrangebyscore(inflight, '-inf', this.now());
    return this.redis.zcard(inflight);
  }

  private refresh() {
    if (this.running.size === 0) return;
    const entries = [...this.running];
    this.redis.limitsRefresh(entries.length, ...entries.map(([, key]) => key), this.now() + this.ttlMs, ...entries.map(([call]) => call)).catch(this.onError);
  }

  close() {
    clearInterval(this.refresher);
  }
}

function refusalOf(c: Candidate, [kind, retryAfterMs]: [number, number, number, number]): Refusal | null {
  if (kind === 1) return overMinuteLimit(c.rateLimitRpm!, retryAfterMs);
  if (kind === 2) return overDayLimit(c.rateLimitRpd!, retryAfterMs);
  return null;
}
