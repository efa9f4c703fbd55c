import { describe, expect, it } from 'vitest';
import { etaMs } from './live-run.ts';

describe('etaMs', () => {
  it('gives no estimate while the speed is mostly the wait for the first token', () => {
    // 3 tokens after 1 s of waiting would promise minutes for a run of a few seconds.
    expect(etaMs(3, 1000, 400)).toBeNull();
    expect(etaMs(50, 800, 400)).toBeNull();
    expect(etaMs(50, 2000, null)).toBeNull();
  });

  it('extrapolates from the measured speed once it means something', () => {
    expect(etaMs(100, 2000, 400)).toBe(6000);
    expect(etaMs(500, 4000, 400)).toBe(0);
  });
});
