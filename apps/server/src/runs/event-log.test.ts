import { describe, expect, it } from 'vitest';
import { InMemoryEventLog } from './event-log.ts';

describe('InMemoryEventLog', () => {
  it('numbers events strictly increasing and replays exactly what follows an id', () => {
    const log = new InMemoryEventLog();
    for (let i = 0; i < 5; i++) log.append('r', `"e${i}"`);
    expect(log.since('r', 0)!.map((e) => e.id)).toEqual([1, 2, 3, 4, 5]);
    expect(log.since('r', 3)!.map((e) => e.json)).toEqual(['"e3"', '"e4"']);
    expect(log.since('r', 5)).toEqual([]);
    expect(log.since('unknown', 0)).toBeNull();
  });

  it('fans each event out to every subscriber once, and stops after unsubscribe', () => {
    const log = new InMemoryEventLog();
    const a: number[] = [];
    const b: number[] = [];
    const stopA = log.subscribe('r', (e) => a.push(e.id));
    log.subscribe('r', (e) => b.push(e.id));
    log.append('r', '1');
    stopA();
    log.append('r', '2', true);
    expect(a).toEqual([1]);
    expect(b).toEqual([1, 2]);
    expect(log.isClosed('r')).toBe(true);
  });

  it('keeps ids consistent when an over-long log is trimmed, and says when a replay is impossible', () => {
    const log = new InMemoryEventLog(3);
    for (let i = 0; i < 6; i++) log.append('r', String(i));
    expect(log.since('r', 3)!.map((e) => e.id)).toEqual([4, 5, 6]);
    expect(log.since('r', 1)).toBeNull();
    expect(log.lastId('r')).toBe(6);
  });
});
