import { describe, expect, it } from 'vitest';
import { ProviderSelector, type Candidate } from './selector.ts';

const provider = (id: string, extra: Partial<Candidate> = {}): Candidate => ({
  id,
  isActive: true,
  priority: 0,
  weight: 1,
  rateLimitRpm: null,
  rateLimitRpd: null,
  ...extra,
});

const share = (picks: string[], id: string) => picks.filter((p) => p === id).length / picks.length;

describe('ProviderSelector', () => {
  it('round_robin cycles through the usable providers in order', () => {
    const s = new ProviderSelector();
    const list = [provider('a'), provider('b'), provider('c')];
    const picks = Array.from({ length: 9 }, () => s.select(list, 'round_robin', 'k').order[0].id);
    expect(picks).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('random spreads evenly over many selections', () => {
    const s = new ProviderSelector();
    const list = [provider('a'), provider('b')];
    const picks = Array.from({ length: 4000 }, () => s.select(list, 'random').order[0].id);
    expect(share(picks, 'a')).toBeGreaterThan(0.45);
    expect(share(picks, 'a')).toBeLessThan(0.55);
  });

  it('weighted follows the weights within a tolerance', () => {
    const s = new ProviderSelector();
    const list = [provider('a', { weight: 1 }), provider('b', { weight: 3 }), provider('zero', { weight: 0 })];
    const picks = Array.from({ length: 8000 }, () => s.select(list, 'weighted').order[0].id);
    expect(share(picks, 'b')).toBeGreaterThan(0.72);
    expect(share(picks, 'b')).toBeLessThan(0.78);
    expect(share(picks, 'zero')).toBe(0);
  });

  it('least_loaded picks the provider with the fewest requests in flight', () => {
    const s = new ProviderSelector();
    const list = [provider('a'), provider('b'), provider('c')];
    s.begin('a');
    s.begin('a');
    s.begin('b');
    expect(s.select(list, 'least_loaded').order[0].id).toBe('c');
    const endC = s.begin('c');
    s.begin('c');
    expect(s.select(list, 'least_loaded').order[0].id).toBe('b');
    endC('ok');
    expect(s.select(list, 'least_loaded').order[0].id).toBe('b'); // b:1, c:1 → list order
  });

  it('skips inactive providers and lists the others as fail-over', () => {
    const s = new ProviderSelector();
    const sel = s.select([provider('off', { isActive: false }), provider('a'), provider('b')], 'round_robin');
    expect(sel.order.map((p) => p.id)).toEqual(['a', 'b']);
    expect(sel.skipped).toEqual([{ id: 'off', reason: 'inactive' }]);
    expect(sel.cooling).toEqual([]);
  });

  it('skips a provider over its requests-per-minute limit until the minute has passed', () => {
    let now = 1_000_000;
    const s = new ProviderSelector({ now: () => now });
    const limited = provider('a', { rateLimitRpm: 2 });
    s.begin('a')('ok');
    s.begin('a')('ok');
    const sel = s.select([limited, provider('b')], 'round_robin');
    expect(sel.order.map((p) => p.id)).toEqual(['b']);
    expect(sel.skipped[0].reason).toMatch(/per minute/);
    expect(sel.skipped[0].retryAfterMs).toBe(60_000);
    now += 61_000;
    expect(s.select([limited], 'round_robin').order.map((p) => p.id)).toEqual(['a']);
  });

  it("counts a minute's limit among a long day's calls", () => {
    let now = 1_000_000;
    const s = new ProviderSelector({ now: () => now });
    // Two calls a minute for 41 hours: the day's window holds 2,880.
    for (let i = 0; i < 5_000; i++) {
      s.begin('a')('ok');
      now += 30_000;
    }
    const limited = provider('a', { rateLimitRpm: 3, rateLimitRpd: 10_000 });
    // One call in the last minute (the loop's last), so two more fit.
    expect(s.begin('a', limited)).toBeTypeOf('function');
    now += 1_000;
    expect(s.begin('a', limited)).toBeTypeOf('function');
    const refused = s.select([limited], 'round_robin').skipped[0];
    expect(refused.reason).toMatch(/3 requests per minute/);
    // The oldest of the three is the loop's last call, 31 s ago.
    expect(refused.retryAfterMs).toBe(60_000 - 31_000);
  });

  it('counts a call made while the clock was set back from the latest time it had shown', () => {
    let now = 10_000_000;
    const s = new ProviderSelector({ now: () => now });
    s.begin('a')('ok');
    now -= 60_000; // the clock steps back a minute, and a call is made
    s.begin('a')('ok');
    now += 61_000;
    // Both calls count from 10,000,000 (the first), so the minute's one call is 1 s old.
    const refused = s.select([provider('a', { rateLimitRpm: 1 })], 'random').skipped[0];
    expect(refused?.retryAfterMs).toBe(59_000);
  });

  it('skips a provider over its requests-per-day limit', () => {
    let now = 1_000_000;
    const s = new ProviderSelector({ now: () => now });
    for (let i = 0; i < 3; i++) {
      s.begin('a')('ok');
      now += 120_000;
    }
    expect(s.select([provider('a', { rateLimitRpd: 3 })], 'random').skipped[0].reason).toMatch(/per day/);
    now += 24 * 3600_000;
    expect(s.select([provider('a', { rateLimitRpd: 3 })], 'random').order).toHaveLength(1);
  });

  it('puts a cooling provider last instead of refusing it, and still offers it when it is the only one', () => {
    let now = 0;
    const s = new ProviderSelector({ now: () => now, failureThreshold: 3, cooldownMs: 30_000 });
    s.begin('a')('failed');
    s.begin('a')('failed');
    s.begin('a')('ok');
    s.begin('a')('failed');
    s.begin('a')('failed');
    expect(s.select([provider('a')], 'round_robin').order).toHaveLength(1);
    s.begin('a')('failed');
    const sel = s.select([provider('a'), provider('b')], 'round_robin');
    expect(sel.order.map((p) => p.id)).toEqual(['b', 'a']);
    expect(sel.skipped).toEqual([]);
    expect(sel.cooling[0].reason).toMatch(/cooling down/);
    const alone = s.select([provider('a')], 'round_robin');
    expect(alone.order.map((p) => p.id)).toEqual(['a']);
    expect(alone.cooling).toHaveLength(1);
    now += 30_001;
    expect(s.select([provider('a')], 'round_robin').cooling).toEqual([]);
  });
});
