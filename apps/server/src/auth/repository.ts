import { and, count, desc, eq, gt, ilike, ne, or, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { apiTokens, sessions, settings, users } from '../db/schema.ts';
import { containing } from '../db/like.ts';

/** Every request's authentication, built once (drizzle's query building costs more than the lookup). */
const credentialQueries = (db: Db) => ({
  sessionUser: db
    .select({ user: users, expiresAt: sessions.expiresAt })
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(and(eq(sessions.id, sql.placeholder('id')), gt(sessions.expiresAt, sql.placeholder('now'))))
    .prepare('session_user'),
  tokenUser: db
    .select({ user: users, tokenId: apiTokens.id, lastUsedAt: apiTokens.lastUsedAt })
    .from(apiTokens)
    .innerJoin(users, eq(users.id, apiTokens.userId))
    .where(eq(apiTokens.tokenHash, sql.placeholder('tokenHash')))
    .prepare('token_user'),
});

export class AuthRepository {
  private readonly credentials: ReturnType<typeof credentialQueries>;

  /**
   * `readDb`: where every request's credential is looked up (Database.readDb), first in line: behind a
   * burst of run starts on the pool, the lookup made every few seconds (KnownCredentials) held up the
   * request that made it, whatever it asked for. A user's own record (every page's `me`) is read there too.
   */
  constructor(
    private readonly db: Db,
    private readonly readDb: Db = db,
  ) {
    this.credentials = credentialQueries(readDb);
  }

  countUsers = async () => (await this.db.select({ n: count() }).from(users))[0].n;
  countAdmins = async () => (await this.db.select({ n: count() }).from(users).where(eq(users.role, 'admin')))[0].n;

  findUserByEmail = async (email: string) => (await this.db.select().from(users).where(eq(users.email, email)))[0];
  findUserById = async (id: string) => (await this.readDb.select().from(users).where(eq(users.id, id)))[0];

  async listUsers(page: number, pageSize: number, search?: string) {
    const where = search ? or(ilike(users.email, containing(search)), ilike(users.name, containing(search))) : undefined;
    const [rows, [{ n }]] = await Promise.all([
      this.db.select().from(users).where(where).orderBy(users.createdAt).limit(pageSize).offset((page - 1) * pageSize),
      this.db.select({ n: count() }).from(users).where(where),
    ]);
    return { count: n, rows };
  }

  async insertUser(values: typeof users.$inferInsert) {
    const rows = await this.db.insert(users).values(values).onConflictDoNothing({ target: users.email }).returning();
    return rows[0];
  }

  /** Creates the first admin only if there is still no user, atomically (two setup requests race). */
  async insertFirstAdmin(values: typeof users.$inferInsert) {
    return this.db.transaction(async (tx) => {
      await tx.execute(sql`lock table users in exclusive mode`);
      const [{ n }] = await tx.select({ n: count() }).from(users);
      if (n > 0) return undefined;
      return (await tx.insert(users).values({ ...values, role: 'admin' }).returning())[0];
    });
  }

  updateUser = async (id: string, values: Partial<typeof users.$inferInsert>) =>
    (await this.db.update(users).set(values).where(eq(users.id, id)).returning())[0];
  deleteUser = async (id: string) => (await this.db.delete(users).where(eq(users.id, id)).returning({ id: users.id })).length > 0;

  insertSession = async (id: string, userId: string, expiresAt: Date) => {
    await this.db.insert(sessions).values({ id, userId, expiresAt });
  };
  // A placeholder is bound as is (not through the column's mapping): the time goes as ISO text.
  findSessionUser = async (id: string) => (await this.credentials.sessionUser.execute({ id, now: new Date().toISOString() }))[0];
  /** The user whose session it was, or undefined when there was none. */
  deleteSession = async (id: string) => (await this.db.delete(sessions).where(eq(sessions.id, id)).returning({ userId: sessions.userId }))[0]?.userId;
  /** Every session and API token of a user but `keep`, in one transaction (no half-signed-out state). */
  deleteCredentialsOf = (userId: string, keep: { kind: 'session' | 'token'; id: string } | null) =>
    this.db.transaction(async (tx) => {
      await tx.delete(sessions).where(and(eq(sessions.userId, userId), keep?.kind === 'session' ? ne(sessions.id, keep.id) : undefined));
      await tx.delete(apiTokens).where(and(eq(apiTokens.userId, userId), keep?.kind === 'token' ? ne(apiTokens.id, keep.id) : undefined));
    });

  insertToken = async (values: typeof apiTokens.$inferInsert) => (await this.db.insert(apiTokens).values(values).returning())[0];
  listTokens = (userId: string) => this.db.select().from(apiTokens).where(eq(apiTokens.userId, userId)).orderBy(desc(apiTokens.createdAt));
  deleteToken = async (userId: string, id: string) =>
    (await this.db.delete(apiTokens).where(and(eq(apiTokens.userId, userId), eq(apiTokens.id, id))).returning({ id: apiTokens.id })).length > 0;
  findTokenUser = async (tokenHash: string) => (await this.credentials.tokenUser.execute({ tokenHash }))[0];
  touchToken = async (id: string) => {
    await this.db.update(apiTokens).set({ lastUsedAt: new Date() }).where(eq(apiTokens.id, id));
  };

  getSetting = async <T>(key: string, fallback: T): Promise<T> =>
    ((await this.db.select().from(settings).where(eq(settings.key, key)))[0]?.value as T | undefined) ?? fallback;
  setSetting = async (key: string, value: unknown) => {
    await this.db.insert(settings).values({ key, value }).onConflictDoUpdate({ target: settings.key, set: { value } });
  };
}
