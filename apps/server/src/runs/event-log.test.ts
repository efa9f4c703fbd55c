import { afterEach, describe, expect, it, vi } from 'vitest';
import { InMemoryEventLog } from './event-log.ts';
import { projectKey, RunPublisher, runKey } from './publisher.ts';

afterEach(() => {
  vi.useRealTimers();
});

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
    const log = new InMemoryEventLog({ maxEventsPerLog: 3 });
    for (let i = 0; i < 6; i++) log.append('r', String(i));
    expect(log.since('r', 3)!.map((e) => e.id)).toEqual([4, 5, 6]);
    expect(log.since('r', 1)).toBeNull();
    expect(log.lastId('r')).toBe(6);
  });

  it('drops an expiring log only once it has gone the whole delay without a subscriber or a new event', () => {
    vi.useFakeTimers();
    const log = new InMemoryEventLog();
    log.append('p', '1');
    log.expire('p', 1_000);
    vi.advanceTimersByTime(600);
    log.append('p', '2'); // the project's next run
    vi.advanceTimersByTime(600);
    expect(log.since('p', 0)!.map((e) => e.json)).toEqual(['1', '2']);
    const stop = log.subscribe('p', () => {});
    vi.advanceTimersByTime(5_000);
    expect(log.lastId('p')).toBe(2);
    stop();
    vi.advanceTimersByTime(2_000);
    expect(log.since('p', 0)).toBeNull();
  });

  it('numbers a log made again after it was dropped from its first id, so old ids are not taken for new ones', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const log = new InMemoryEventLog({ firstId: Date.now });
    expect(log.append('p', 'a').id).toBe(1_000_000);
    log.append('p', 'b');
    log.expire('p', 1_000);
    vi.advanceTimersByTime(1_000);
    expect(log.since('p', 1_000_001)).toBeNull();
    const again = log.append('p', 'c');
    expect(again.id).toBe(1_001_000);
    expect(log.since('p', 1_000_001)).toBeNull(); // an id of the dropped log is not a place in this one
    expect(log.since('p', 1_000_999)!.map((e) => e.json)).toEqual(['c']);
  });
});

describe('RunPublisher', () => {
  it("expires a finished run's log and its project's log, once nobody follows the project", () => {
    vi.useFakeTimers();
    const runs = new InMemoryEventLog();
    const projects = new InMemoryEventLog();
    const publisher = new RunPublisher(runs, projects);
    const target = { runId: 'r1', projectId: 'p1', stage: 'rewrite' as const };
    publisher.emit(target, { type: 'done', output: null, run: null as never }, true);
    const stop = projects.subscribe(projectKey('p1'), () => {});
    publisher.expire(target, 1_000);
    vi.advanceTimersByTime(1_000);
    expect(runs.since(runKey('r1'), 0)).toBeNull();
    expect(projects.since(projectKey('p1'), 0)).toHaveLength(1); // still followed
    stop();
    vi.advanceTimersByTime(1_000);
    expect(projects.since(projectKey('p1'), 0)).toBeNull();
  });
});
