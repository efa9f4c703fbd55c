import type { AuthUser, Credential } from './service.ts';

interface OpenStream {
  credential: Credential | null;
  end: () => void;
}

const same = (a: Credential | null, b: Credential | null) => a !== null && b !== null && a.kind === b.kind && a.id === b.id;
/** Whether `ending` ends a stream of its user opened with `credential`. */
const ends = (ending: StreamEnding, credential: Credential | null) => ('credential' in ending ? same(credential, ending.credential) : !same(credential, ending.keep));

/** How long endings are remembered for `endedSince`: far longer than a request takes from its sign-in check to its stream. */
const RECENT_ENDINGS_MS = 60_000;

/**
 * The event streams each user has open, filed under the session or token that opened them. A stream
 * outlives the request that authorised it, so ending a credential (logout, password change or reset,
 * token revoked, account deleted) must end its streams too, or a signed-out user keeps reading.
 */
/** Which streams to end: a user's (all but `keep`'s), or those of one credential. */
export type StreamEnding = { userId: string; credential: Credential } | { userId: string; keep: Credential | null };

export class LiveStreams {
  private readonly byUser = new Map<string, Set<OpenStream>>();
  private relay?: (ending: StreamEnding) => void;
  /** The endings of the last minute, oldest first, numbered from 1. */
  private recent: { n: number; at: number; ending: StreamEnding }[] = [];
  private endings = 0;

  /** How many endings there have been: taken before a request's credential is checked, for `endedSince`. */
  get endingCount() {
    return this.endings;
  }

  /**
   * Whether an ending after the first `count` ends a stream of `userId` opened with `credential`: one
   * that came after the request's credential was checked but before its stream was filed here.
   */
  endedSince(count: number, userId: string, credential: Credential | null): boolean {
    return this.recent.some((r) => r.n > count && r.ending.userId === userId && ends(r.ending, credential));
  }

  /**
   * Scale-out mode: the user's streams may be open on other instances too; every ending is also
   * handed to `relay`, which brings it to them (and they call `endHere`).
   */
  shareWith(relay: (ending: StreamEnding) => void) {
    this.relay = relay;
  }

  /** Files an open stream; the returned function forgets it (call it when the stream closes). */
  track(user: AuthUser, credential: Credential | null, end: () => void): () => void {
    const entry: OpenStream = { credential, end };
    let set = this.byUser.get(user.id);
    if (!set) this.byUser.set(user.id, (set = new Set()));
    set.add(entry);
    return () => {
      set.delete(entry);
      if (set.size === 0 && this.byUser.get(user.id) === set) this.byUser.delete(user.id);
    };
  }

  /** Ends every stream of a user, except those opened with `keep` (the session making a password change). */
  endUser(userId: string, keep: Credential | null = null) {
    this.end({ userId, keep });
  }

  /** Ends the streams opened with one session or token. */
  endCredential(userId: string, credential: Credential) {
    this.end({ userId, credential });
  }

  /** Ends every open stream: the server is shutting down, and its clients reconnect (to another instance behind a balancer). */
  endAll() {
    for (const set of [...this.byUser.values()]) for (const s of [...set]) s.end();
  }

  private end(ending: StreamEnding) {
    this.endHere(ending);
    this.relay?.(ending);
  }

  /** Ends the matching streams of this instance (an ending decided here, or relayed from another instance). */
  endHere(ending: StreamEnding) {
    const now = Date.now();
    while (this.recent.length && now - this.recent[0].at > RECENT_ENDINGS_MS) this.recent.shift();
    this.recent.push({ n: ++this.endings, at: now, ending });
    for (const s of [...(this.byUser.get(ending.userId) ?? [])]) if (ends(ending, s.credential)) s.end();
  }
}
