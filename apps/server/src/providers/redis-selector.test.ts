import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { connectRedis } from '../redis/connection.ts';
import { RedisProviderSelector } from './redis-selector.ts';
import { ProviderSelector, type Candidate, type EndCall, type ProviderLimiter, type Refusal, type SelectorOptions } from './selector.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

const provider = (id: string, extra: Partial<Candidate> = {}): Candidate => ({ id, isActive: true, priority: 0, weight: 1, rateLimitRpm: null, rateLimitRpd: null, ...extra });
const limits = (c: Candidate) => ({ rateLimitRpm: c.rateLimitRpm, rateLimitRpd: c.rateLimitRpd });
const isCall = (r: EndCall | Refusal): r is EndCall => typeof r === 'function';

/** Connections made by a test, and the prefixes it wrote under: closed and emptied after it. */
const opened: { redis: Redis; selector?: RedisProviderSelector }[] = [];
const prefixes: string[] = [];

/** An "instance": its own connection and selector, on the key prefix the instances of one test share. */
function instance(prefix: string, opts: ConstructorParameters<typeof RedisProviderSelector>[1] = {}) {
  const redis = connectRedis({ url: REDIS_URL, prefix, name: 'limits-test' });
  const selector = new RedisProviderSelector(redis, opts);
  opened.push({ redis, selector });
  return selector;
}

function newPrefix() {
  const prefix = `test:limits:${randomUUID()}:`;
  prefixes.push(prefix);
  return prefix;
}

afterEach(async () => {
  for (const { redis, selector } of opened.splice(0)) {
    selector?.close();
    await redis.quit();
  }
  const raw = new Redis(REDIS_URL);
  for (const prefix of prefixes.splice(0)) {
    const found = await raw.keys(`${prefix}*`);
    if (found.length) await raw.del(...found);
  }
  await raw.quit();
});

/** The contract both selectors keep: the same scenario gives the same answers. */
describe.each([
  ['in-process', (opts: SelectorOptions) => new ProviderSelector(opts) as ProviderLimiter],
  ['Redis', (opts: SelectorOptions) => instance(newPrefix(), opts) as ProviderLimiter],
])('the %s selector', (_name, make) => {
  it('refuses a call over the requests-per-minute limit at begin, and says when a slot frees', async () => {
    let now = 1_000_000;
    const s = make({ now: () => now });
    const a = provider('a', { rateLimitRpm: 2 });
    expect(isCall(await s.begin('a', limits(a)))).toBe(true);
    now += 10_000;
    expect(isCall(await s.begin('a', limits(a)))).toBe(true);
    const refused = await s.begin('a', limits(a));
    expect(refused).toEqual({ reason: 'over its limit of 2 requests per minute', retryAfterMs: 50_000 });
    const sel = await s.select([a, provider('b')], 'round_robin');
    expect(sel.order.map((p) => p.id)).toEqual(['b']);
    expect(sel.skipped).toEqual([{ id: 'a', reason: 'over its limit of 2 requests per minute', retryAfterMs: 50_000 }]);
    now += 50_001;
    expect(isCall(await s.begin('a', limits(a)))).toBe(true);
  });

  it('refuses a call over the requests-per-day limit until the oldest leaves the day', async () => {
    let now = 1_000_000;
    const s = make({ now: () => now });
    const a = provider('a', { rateLimitRpd: 2 });
    for (let i = 0; i < 2; i++) {
      expect(isCall(await s.begin('a', limits(a)))).toBe(true);
      now += 3600_000;
    }
    expect(await s.begin('a', limits(a))).toEqual({ reason: 'over its limit of 2 requests per day', retryAfterMs: 22 * 3600_000 });
    now += 22 * 3600_000 + 1;
    expect((await s.select([a], 'random')).order).toHaveLength(1);
  });

  it('puts a provider last after three failures in a row, and a success clears its count', async () => {
    let now = 0;
    const s = make({ now: () => now, failureThreshold: 3, cooldownMs: 30_000 });
    const call = async () => (await s.begin('a')) as EndCall;
    (await call())('failed');
    (await call())('failed');
    (await call())('ok');
    (await call())('failed');
    (await call())('failed');
    expect((await s.select([provider('a'), provider('b')], 'round_robin', 'k')).cooling).toEqual([]);
    (await call())('failed');
    const sel = await s.select([provider('a'), provider('b')], 'round_robin', 'k');
    expect(sel.order.map((p) => p.id)).toEqual(['b', 'a']);
    expect(sel.cooling).toEqual([{ id: 'a', reason: 'cooling down for 30 s after repeated failures' }]);
    now += 30_001;
    expect((await s.select([provider('a')], 'round_robin')).cooling).toEqual([]);
  });

  it('least_loaded picks the provider with the fewest calls in flight', async () => {
    const s = make({});
    const list = [provider('a'), provider('b'), provider('c')];
    await s.begin('a');
    await s.begin('a');
    await s.begin('b');
    expect((await s.select(list, 'least_loaded')).order[0].id).toBe('c');
    const endC = (await s.begin('c')) as EndCall;
    await s.begin('c');
    expect((await s.select(list, 'least_loaded')).order[0].id).toBe('b');
    endC('ok');
    expect((await s.select(list, 'least_loaded')).order[0].id).toBe('b');
  });

  it('skips inactive providers without counting them', async () => {
    const s = make({});
    const sel = await s.select([provider('off', { isActive: false }), provider('a'), provider('b')], 'round_robin');
    expect(sel.order.map((p) => p.id)).toEqual(['a', 'b']);
    expect(sel.skipped).toEqual([{ id: 'off', reason: 'inactive' }]);
  });
});

describe('the Redis selector across instances', () => {
  it('lets at most N calls per minute through two instances together, however the starts race', async () => {
    const prefix = newPrefix();
    const [a, b] = [instance(prefix), instance(prefix)];
    const limited = provider('p', { rateLimitRpm: 5 });
    const results = await Promise.all(Array.from({ length: 24 }, (_, i) => (i % 2 ? a : b).begin('p', limits(limited))));
    expect(results.filter(isCall)).toHaveLength(5);
    expect(results.filter((r) => !isCall(r))[0]).toMatchObject({ reason: 'over its limit of 5 requests per minute' });
    for (const s of [a, b]) expect((await s.select([limited], 'round_robin')).skipped).toHaveLength(1);
  });

  it('a provider cooling down on one instance is cooling down on the other', async () => {
    const prefix = newPrefix();
    const [a, b] = [instance(prefix, { failureThreshold: 2 }), instance(prefix, { failureThreshold: 2 })];
    ((await a.begin('p')) as EndCall)('failed');
    ((await b.begin('p')) as EndCall)('failed');
    await a.inFlight('p'); // the ends above were sent without waiting; a later command on each connection follows them
    await b.inFlight('p');
    for (const s of [a, b]) {
      const sel = await s.select([provider('p'), provider('q')], 'round_robin');
      expect(sel.order.map((c) => c.id)).toEqual(['q', 'p']);
      expect(sel.cooling[0].reason).toMatch(/cooling down/);
    }
    ((await b.begin('p')) as EndCall)('ok');
    await b.inFlight('p');
    expect((await a.select([provider('p'), provider('q')], 'round_robin')).cooling).toEqual([]);
  });

  it('least_loaded sees the calls in flight on both instances, and round_robin takes turns across them', async () => {
    const prefix = newPrefix();
    const [a, b] = [instance(prefix), instance(prefix)];
    const list = [provider('x'), provider('y')];
    await a.begin('x');
    await b.begin('x');
    await b.begin('y');
    expect(await a.inFlight('x')).toBe(2);
    expect((await a.select(list, 'least_loaded')).order[0].id).toBe('y');
    const picks = [];
    for (let i = 0; i < 4; i++) picks.push((await (i % 2 ? b : a).select(list, 'round_robin', 'shared')).order[0].id);
    expect(picks).toEqual(['x', 'y', 'x', 'y']);
  });

  it('a crashed instance stops counting once its calls pass their deadline; a live one keeps its calls counted', async () => {
    const prefix = newPrefix();
    const live = instance(prefix, { inFlightTtlMs: 1_000 });
    const crashed = instance(prefix, { inFlightTtlMs: 1_000 });
    await live.begin('p');
    await crashed.begin('p');
    crashed.close(); // no more refreshes: as if its process had died mid-call
    expect(await live.inFlight('p')).toBe(2);
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await live.inFlight('p')).toBe(1);
  });

  it('answers 503 unavailable when Redis cannot be reached: no instance calls a provider blind to the others', async () => {
    const errors: unknown[] = [];
    const down = new Redis('redis://127.0.0.1:1', { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
    down.on('error', () => {});
    const s = new RedisProviderSelector(down, { onError: (err) => errors.push(err) });
    try {
      await expect(s.select([provider('p', { rateLimitRpm: 1 })], 'round_robin')).rejects.toMatchObject({ status: 503, code: 'unavailable' });
      expect(errors).toHaveLength(1);
    } finally {
      s.close();
      down.disconnect();
    }
  });

  it('studios with different key prefixes do not share limits', async () => {
    const limited = provider('p', { rateLimitRpm: 1 });
    const a = instance(newPrefix());
    const b = instance(newPrefix());
    expect(isCall(await a.begin('p', limits(limited)))).toBe(true);
    expect(isCall(await b.begin('p', limits(limited)))).toBe(true);
    expect(isCall(await a.begin('p', limits(limited)))).toBe(false);
  });
});
