import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LiveStreams } from './live-streams.ts';

const laptop = { kind: 'session', id: 'laptop' } as const;
const phone = { kind: 'session', id: 'phone' } as const;
const script = { kind: 'token', id: 'script' } as const;

describe("LiveStreams.endedSince: an ending between a request's credential check and its stream", () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('counts only the endings after the count taken, of that user and credential', () => {
    const streams = new LiveStreams();
    streams.endCredential('ann', laptop);
    const checked = streams.endingCount;
    expect(streams.endedSince(checked, 'ann', laptop)).toBe(false); // ended before the check: the check itself refused it
    streams.endCredential('bob', laptop);
    streams.endCredential('ann', phone);
    expect(streams.endedSince(checked, 'ann', laptop)).toBe(false);
    expect(streams.endedSince(checked, 'ann', phone)).toBe(true);
    expect(streams.endedSince(checked, 'bob', laptop)).toBe(true);
  });

  it("a user's ending keeps the credential it spares (a password change's own session)", () => {
    const streams = new LiveStreams();
    const checked = streams.endingCount;
    streams.endUser('ann', laptop);
    expect(streams.endedSince(checked, 'ann', laptop)).toBe(false);
    expect(streams.endedSince(checked, 'ann', phone)).toBe(true);
    expect(streams.endedSince(checked, 'ann', script)).toBe(true);
  });

  it('forgets endings after a minute, and ends the streams it files as before', () => {
    const streams = new LiveStreams();
    const end = vi.fn();
    streams.track({ id: 'ann', email: 'ann@example.com', name: 'ann', role: 'user' }, laptop, end);
    const checked = streams.endingCount;
    streams.endCredential('ann', laptop);
    expect(end).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(60_001);
    streams.endCredential('bob', phone); // an ending prunes the old ones
    expect(streams.endedSince(checked, 'ann', laptop)).toBe(false);
  });
});
