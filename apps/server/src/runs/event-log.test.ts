import { afterEach, describe, expect, it, vi } from 'vitest';
import { InMemoryEventLog, TOKENS_KEPT_AFTER_FOLLOWER_MS } from './event-log.ts';
import { projectKey, RunPublisher, runKey, tokenTarget } from './publisher.ts';

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

describe('InMemoryEventLog tokens', () => {
  it('keeps a token compactly and gives back its exact JSON', () => {
    const log = new InMemoryEventLog();
    const seen: string[] = [];
    log.subscribe('r', (e) => seen.push(e.json));
    log.appendToken('r', '你好 "x"', '}');
    log.append('r', '{"type":"done"}', true);
    const expected = ['{"type":"token","content":"你好 \\"x\\""}', '{"type":"done"}'];
    expect(seen).toEqual(expected);
    expect(log.since('r', 0)!.map((e) => [e.id, e.json, e.terminal])).toEqual([
      [1, expected[0], false],
      [2, expected[1], true],
    ]);
  });

  it('with tokensWhileFollowed, keeps tokens only while a follower wants them, and never replays a gap as if whole', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const log = new InMemoryEventLog({ tokensWhileFollowed: true });
    const page: number[] = [];
    log.subscribe('p', (e) => page.push(e.id), { tokens: false });
    log.append('p', '{"type":"stage_update"}'); // 1
    log.appendToken('p', 'a', '}'); // 2: only a page without tokens follows: not kept, not sent to it
    log.append('p', '{"type":"progress"}'); // 3
    expect(page).toEqual([1, 3]);
    // A client without tokens resumes exactly; one with tokens would miss token 2: it must catch up instead.
    expect(log.since('p', 1, { tokens: false })!.map((e) => e.id)).toEqual([3]);
    expect(log.since('p', 1)).toBeNull();
    expect(log.since('p', 2)!.map((e) => e.id)).toEqual([3]);

    const tokens: string[] = [];
    const stop = log.subscribe('p', (e) => tokens.push(e.json));
    log.appendToken('p', 'b', ',"run_id":"r1"}'); // 4: kept now
    expect(tokens).toEqual(['{"type":"token","content":"b","run_id":"r1"}']);
    expect(log.since('p', 3)!.map((e) => e.json)).toEqual(['{"type":"token","content":"b","run_id":"r1"}']);
    stop();
    log.appendToken('p', 'c', '}'); // 5: kept a while after its follower left, so a reconnect resumes exactly
    expect(log.since('p', 4)!.map((e) => e.id)).toEqual([5]);
    vi.setSystemTime(Date.now() + TOKENS_KEPT_AFTER_FOLLOWER_MS + 1);
    log.appendToken('p', 'd', '}'); // 6: dropped again
    expect(log.since('p', 3)).toBeNull();
    expect(log.since('p', 3, { tokens: false })!.map((e) => e.id)).toEqual([4, 5]);
    expect(log.lastId('p')).toBe(6);
    vi.useRealTimers();
  });

  it("compacts a closed log: each stretch of tokens becomes one, replays stay exact or are refused", () => {
    const log = new InMemoryEventLog();
    log.append('r', '{"type":"stage_update"}'); // 1
    log.appendToken('r', '雪', '}'); // 2
    log.append('r', '{"type":"progress"}'); // 3
    log.appendToken('r', '"山', '}'); // 4
    log.appendToken('r', '🏔', '}'); // 5
    log.append('r', '{"type":"shot"}'); // 6
    log.appendToken('r', '!', '}'); // 7
    log.compact('r'); // still open: nothing changes
    expect(log.since('r', 0)).toHaveLength(7);
    log.append('r', '{"type":"done"}', true); // 8
    log.compact('r');
    const replay = log.since('r', 0)!;
    expect(replay.map((e) => e.id)).toEqual([1, 5, 6, 7, 8]);
    expect(JSON.parse(replay[1].json)).toEqual({ type: 'token', content: '雪"山🏔' });
    expect(replay.at(-1)!.terminal).toBe(true);
    // Inside the merged stretch a client holds part of its text: refused, so it starts over elsewhere.
    for (const cut of [2, 3, 4]) expect(log.since('r', cut)).toBeNull();
    expect(log.since('r', 1)!.map((e) => e.id)).toEqual([5, 6, 7, 8]);
    expect(log.since('r', 5)!.map((e) => e.id)).toEqual([6, 7, 8]);
    expect(log.since('r', 7)!.map((e) => e.id)).toEqual([8]);
    expect([log.lastId('r'), log.isClosed('r')]).toEqual([8, true]);
  });
});

describe('RunPublisher', () => {
  it("replays a finished run's tokens and ending from both logs exactly as they were sent", () => {
    const runs = new InMemoryEventLog();
    const projects = new InMemoryEventLog();
    const publisher = new RunPublisher(runs, projects);
    const target = { runId: 'r1', projectId: 'p1', stage: 'rewrite' as const };
    const live: string[] = [];
    projects.subscribe(projectKey('p1'), (e) => live.push(e.json));
    const text = '夜雨"敲窗\n🏮';
    for (const piece of ['夜雨', '"敲窗', '\n🏮']) publisher.token(tokenTarget(target), piece);
    const done = { type: 'done' as const, output: { original_text: '雨夜', rewritten_text: text }, full_text: text, run: null as never };
    publisher.emit(target, done, true);
    publisher.compact(target, text);

    const sentDone = live.at(-1)!;
    expect(JSON.parse(sentDone)).toEqual({ ...done, run_id: 'r1', stage: 'rewrite' });
    const replay = runs.since(runKey('r1'), 0)!;
    expect(replay.map((e) => [e.id, JSON.parse(e.json), e.terminal])).toEqual([
      [3, { type: 'token', content: text }, false],
      [4, { ...done, run_id: 'r1', stage: 'rewrite' }, true],
    ]);
    expect(replay[1].json).toBe(sentDone);
    expect(replay[1].json).toBe(sentDone); // read again, the same
    expect(projects.since(projectKey('p1'), 3)!.map((e) => e.json)).toEqual([sentDone]);
  });

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
