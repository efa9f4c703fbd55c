import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KnownCredentials, type KnownCredential } from './known-credentials.ts';

const credentialOf = (userId: string, id: string, expiresAt: Date | null = null): KnownCredential => ({
  user: { id: userId, email: `${userId}@example.com`, name: userId, role: 'user' },
  credential: { kind: expiresAt ? 'session' : 'token', id },
  expiresAt,
});

describe('KnownCredentials', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  /** A lookup that counts its reads of the database. */
  const lookup = (found: KnownCredential | null) => vi.fn(async () => found);

  it('reads a credential once for its time to live, then again', async () => {
    const known = new KnownCredentials(5_000);
    const load = lookup(credentialOf('ann', 'tok-1'));
    await known.get('token:1', load);
    vi.advanceTimersByTime(4_999);
    expect((await known.get('token:1', load))?.user.id).toBe('ann');
    expect(load).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(1);
    expect(known.size).toBe(0);
    await known.get('token:1', load);
    expect(load).toHaveBeenCalledTimes(2);
  });

  it('never remembers an unknown credential', async () => {
    const known = new KnownCredentials(5_000);
    const load = lookup(null);
    expect(await known.get('session:nobody', load)).toBeNull();
    expect(await known.get('session:nobody', load)).toBeNull();
    expect(load).toHaveBeenCalledTimes(2);
    expect(known.size).toBe(0);
  });

  it('does not serve a session past its end', async () => {
    const known = new KnownCredentials(5_000);
    const load = lookup(credentialOf('ann', 'sess-1', new Date(Date.now() + 1_000)));
    await known.get('session:1', load);
    vi.advanceTimersByTime(1_000);
    await known.get('session:1', load);
    expect(load).toHaveBeenCalledTimes(2);
  });

  it("forgets every credential of a user at once, and only that user's; relays the forget", async () => {
    const known = new KnownCredentials(5_000);
    const relayed: string[] = [];
    known.shareWith((userId) => relayed.push(userId));
    const annSession = lookup(credentialOf('ann', 'sess-1', new Date(Date.now() + 60_000)));
    const annToken = lookup(credentialOf('ann', 'tok-1'));
    const bob = lookup(credentialOf('bob', 'tok-2'));
    for (const [key, load] of [['session:1', annSession], ['token:1', annToken], ['token:2', bob]] as const) await known.get(key, load);

    known.forget('ann');
    expect(relayed).toEqual(['ann']);
    await known.get('session:1', annSession);
    await known.get('token:1', annToken);
    await known.get('token:2', bob);
    expect([annSession, annToken, bob].map((l) => l.mock.calls.length)).toEqual([2, 2, 1]);

    // A forget relayed from another instance is not relayed again.
    known.forgetHere('bob');
    await known.get('token:2', bob);
    expect(bob).toHaveBeenCalledTimes(2);
    expect(relayed).toEqual(['ann']);
  });

  it('does not keep a lookup that was under way while a user was forgotten (it may have read the row before the change)', async () => {
    const known = new KnownCredentials(5_000);
    let answer!: (found: KnownCredential) => void;
    const slow = known.get('session:1', () => new Promise<KnownCredential>((resolve) => (answer = resolve)));
    known.forget('ann'); // signed out while the lookup waited for the database
    answer(credentialOf('ann', 'sess-1', new Date(Date.now() + 60_000)));
    expect((await slow)?.user.id).toBe('ann'); // the request already under way is answered as before
    expect(known.size).toBe(0);
    const load = lookup(null);
    expect(await known.get('session:1', load)).toBeNull();
    expect(load).toHaveBeenCalledTimes(1);
  });
});
