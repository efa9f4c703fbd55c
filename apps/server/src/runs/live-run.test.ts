import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { RunRow } from '../db/schema.ts';
import { STAGES } from '../stages/index.ts';
import type { StageContext } from '../stages/definition.ts';
import { InMemoryEventLog } from './event-log.ts';
import { etaMs, LiveRun } from './live-run.ts';
import { RunPublisher, runKey } from './publisher.ts';

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

/** A run of `stage`, and the events of one type it has sent so far. */
const liveRun = (stage: 'rewrite' | 'video') => {
  const runLog = new InMemoryEventLog();
  const run = new LiveRun({ id: 'run-1', projectId: 'project-1' } as RunRow, STAGES[stage]!, {}, {} as StageContext, new RunPublisher(runLog, new InMemoryEventLog()), null);
  const sent = (type: string) => (runLog.since(runKey('run-1'), 0) ?? []).map((e) => JSON.parse(e.json)).filter((e) => e.type === type);
  return { run, sent };
};

describe('token coalescing', () => {
  // A clock of our own: what is asserted is which tokens share an event, never how long anything took.
  beforeEach(() => void vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] }));
  afterEach(() => void vi.useRealTimers());

  const textRun = () => {
    const { run, sent } = liveRun('rewrite');
    return { run, tokens: () => sent('token').map((e) => e.content) };
  };

  it('sends a token that follows a quiet spell at once, without waiting for others', () => {
    const { run, tokens } = textRun();
    run.onDelta('一');
    expect(tokens()).toEqual(['一']);
    for (const t of ['只', '猫']) {
      vi.advanceTimersByTime(20); // a reading pace: 50 tokens a second
      run.onDelta(t);
      expect(tokens().at(-1)).toBe(t);
    }
    run.dispose();
  });

  it('sends each token of a jittery stream at once: a late token and the next one on time are not a fast stream', () => {
    const { run, tokens } = textRun();
    run.onDelta('一');
    vi.advanceTimersByTime(20);
    run.onDelta('只');
    vi.advanceTimersByTime(33); // late
    run.onDelta('小');
    vi.advanceTimersByTime(7); // on time again, close behind the late one
    run.onDelta('猫');
    expect(tokens()).toEqual(['一', '只', '小', '猫']);
    run.dispose();
  });

  it('gathers tokens that keep arriving faster than a frame into one event per window', () => {
    const { run, tokens } = textRun();
    run.onDelta('a');
    vi.advanceTimersByTime(5); // 200 tokens a second
    run.onDelta('b'); // one short gap could be jitter: it goes at once
    for (const t of ['c', 'd', 'e']) {
      vi.advanceTimersByTime(5);
      run.onDelta(t);
    }
    expect(tokens()).toEqual(['a', 'b']);
    vi.advanceTimersByTime(10); // the window that began with b's event ends
    expect(tokens()).toEqual(['a', 'b', 'cde']);
    expect(run.sentText).toBe('abcde');
    run.dispose();
  });
});

describe('task progress', () => {
  // A clock of our own: what is asserted is which updates reach the browser, never how long a render took.
  beforeEach(() => void vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] }));
  afterEach(() => void vi.useRealTimers());

  const videoRun = () => {
    const { run, sent } = liveRun('video');
    return { run, tasks: () => sent('task').map((e) => [e.status, e.message ?? e.position, e.percent]) };
  };

  it('thins a step’s percent to one update per half second', () => {
    const { run, tasks } = videoRun();
    for (let p = 0; p <= 60; p += 10) {
      run.task('shot-1', 'running', { percent: p, message: 'rendering' });
      vi.advanceTimersByTime(100);
    }
    run.task('shot-1', 'running', { percent: 70, message: 'rendering' });
    expect(tasks()).toEqual([['running', 'rendering', 0], ['running', 'rendering', 50]]);
    run.dispose();
  });

  it('tells a new step at once, however soon after the last update', () => {
    const { run, tasks } = videoRun();
    run.task('shot-1', 'running', { percent: 0 });
    run.task('shot-1', 'queued', { position: 1 });
    run.task('shot-1', 'running', { percent: 0, message: 'rendering' });
    run.task('shot-1', 'running', { percent: 40, message: 'rendering' });
    run.task('shot-1', 'running', { percent: 90, message: 'fitting' });
    run.task('shot-2', 'running', { percent: 0, message: 'rendering' });
    run.task('shot-1', 'succeeded', { percent: 100 });
    expect(tasks()).toEqual([
      ['running', undefined, 0],
      ['queued', 1, undefined],
      ['running', 'rendering', 0],
      ['running', 'fitting', 90],
      ['running', 'rendering', 0],
      ['succeeded', undefined, 100],
    ]);
    run.dispose();
  });
});
