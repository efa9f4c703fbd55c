import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ReadCache } from './read-cache.ts';

describe('ReadCache', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('shares one read for its time to live, then reads again', async () => {
    const cache = new ReadCache<number>(5_000);
    let reads = 0;
    const load = async () => ++reads;
    expect(await Promise.all([cache.get('k', load), cache.get('k', load)])).toEqual([1, 1]);
    vi.advanceTimersByTime(4_999);
    expect(await cache.get('k', load)).toBe(1);
    vi.advanceTimersByTime(1);
    expect(await cache.get('k', load)).toBe(2);
  });

  it('keeps neither a failed read nor one whose time is up', async () => {
    const cache = new ReadCache<string>(5_000);
    await expect(cache.get('broken', () => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(cache.size).toBe(0);
    for (let i = 0; i < 100; i++) await cache.get(`set-${i}:rewrite`, async () => 'template');
    expect(cache.size).toBe(100);
    vi.advanceTimersByTime(5_000);
    expect(cache.size).toBe(0);
    expect(await cache.get('set-1:rewrite', async () => 'read again')).toBe('read again');
  });

  it('forgets everything on clear (a write made here)', async () => {
    const cache = new ReadCache<string>(5_000);
    await cache.get('k', async () => 'old');
    cache.clear();
    expect(await cache.get('k', async () => 'new')).toBe('new');
  });
});
