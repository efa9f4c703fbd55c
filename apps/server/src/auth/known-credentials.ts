import type { AuthUser, Credential } from './service.ts';

/** How long a credential is remembered; in scale-out mode, how long a lost relay message could leave a revoked one honoured. */
export const CREDENTIAL_MEMORY_MS = 5_000;

export interface KnownCredential {
  user: AuthUser;
  credential: Credential;
  /** A session's end; an API token has none. */
  expiresAt: Date | null;
}

/**
 * Whose session or API token a request carries, remembered for a few seconds: a run start and its event
 * stream, a page and its reads, come in bursts, and each request looking its credential up again was
 * one round trip to the database in every one of them.
 *
 * Revocation stays immediate. Every change to a user or their credentials (sign-out, password change,
 * token revoked, role changed, account deleted) goes through the auth service, which forgets the user
 * here before it answers; in scale-out mode `forget` is also relayed to every other instance. A lookup
 * that was under way while a user was forgotten is not kept (it may have read the row before the
 * change), and an entry lives at most `ttlMs`: the bound if a relayed message were lost.
 */
export class KnownCredentials {
  private readonly entries = new Map<string, KnownCredential & { at: number }>();
  private readonly keysByUser = new Map<string, Set<string>>();
  /** Counts forgets, so a lookup can tell whether one happened while it waited for the database. */
  private forgets = 0;
  private relay?: (userId: string) => void;

  constructor(private readonly ttlMs: number) {}

  /** Scale-out mode: every forget is also handed to `relay`, which brings it to the other instances (they call `forgetHere`). */
  shareWith(relay: (userId: string) => void) {
    this.relay = relay;
  }

  async get(key: string, load: () => Promise<KnownCredential | null>): Promise<KnownCredential | null> {
    const now = Date.now();
    const hit = this.entries.get(key);
    if (hit && now - hit.at < this.ttlMs && (hit.expiresAt === null || hit.expiresAt.getTime() > now)) return hit;
    const forgetsBefore = this.forgets;
    const found = await load();
    if (found && this.forgets === forgetsBefore) this.remember(key, found);
    return found;
  }

  /** A user or their credentials changed: their next request reads the database, here and on every instance. */
  forget(userId: string) {
    this.forgetHere(userId);
    this.relay?.(userId);
  }

  forgetHere(userId: string) {
    this.forgets++;
    for (const key of this.keysByUser.get(userId) ?? []) this.entries.delete(key);
    this.keysByUser.delete(userId);
  }

  get size() {
    return this.entries.size;
  }

  private remember(key: string, found: KnownCredential) {
    const entry = { ...found, at: Date.now() };
    this.entries.set(key, entry);
    let keys = this.keysByUser.get(found.user.id);
    if (!keys) this.keysByUser.set(found.user.id, (keys = new Set()));
    keys.add(key);
    setTimeout(() => {
      if (this.entries.get(key) !== entry) return;
      this.entries.delete(key);
      keys.delete(key);
      if (keys.size === 0 && this.keysByUser.get(found.user.id) === keys) this.keysByUser.delete(found.user.id);
    }, this.ttlMs).unref();
  }
}
