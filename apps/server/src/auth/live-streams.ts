import type { AuthUser, Credential } from './service.ts';

interface OpenStream {
  credential: Credential | null;
  end: () => void;
}

const same = (a: Credential | null, b: Credential | null) => a !== null && b !== null && a.kind === b.kind && a.id === b.id;

/**
 * The event streams each user has open, filed under the session or token that opened them. A stream
 * outlives the request that authorised it, so ending a credential (logout, password change or reset,
 * token revoked, account deleted) must end its streams too, or a signed-out user keeps reading.
 */
export class LiveStreams {
  private readonly byUser = new Map<string, Set<OpenStream>>();

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
    for (const s of [...(this.byUser.get(userId) ?? [])]) if (!same(s.credential, keep)) s.end();
  }

  /** Ends every open stream: the server is shutting down, and its clients reconnect (to another instance behind a balancer). */
  endAll() {
    for (const set of [...this.byUser.values()]) for (const s of [...set]) s.end();
  }

  /** Ends the streams opened with one session or token. */
  endCredential(userId: string, credential: Credential) {
    for (const s of [...(this.byUser.get(userId) ?? [])]) if (same(s.credential, credential)) s.end();
  }
}
