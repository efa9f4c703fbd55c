import type { ApiToken, Role, User } from '@ai-story/contracts';
import { randomToken, sha256 } from '../crypto/cipher.ts';
import type { UserRow } from '../db/schema.ts';
import { AppError, conflict, forbidden, notFound } from '../errors.ts';
import { dummyVerify, hashPassword, verifyPassword } from './password.ts';
import type { KnownCredential, KnownCredentials } from './known-credentials.ts';
import type { LiveStreams } from './live-streams.ts';
import type { AuthRepository } from './repository.ts';

export interface AuthUser {
  id: string;
  email: string;
  name: string;
  role: Role;
}

/** The session (by the stored hash of its cookie) or API token (by id) a request was authenticated with. */
export interface Credential {
  kind: 'session' | 'token';
  id: string;
}

export const SESSION_TTL_MS = 30 * 24 * 3600 * 1000;
const TOKEN_PREFIX = 'ais_';

export const toUser = (row: UserRow): User => ({
  id: row.id,
  email: row.email,
  name: row.name,
  role: row.role,
  created_at: row.createdAt.toISOString(),
});

const toAuthUser = (row: UserRow): AuthUser => ({ id: row.id, email: row.email, name: row.name, role: row.role });

export class AuthService {
  constructor(
    private readonly repo: AuthRepository,
    private readonly streams: LiveStreams,
    private readonly known: KnownCredentials,
  ) {}

  /** LiveStreams.endingCount: read before a request's credential is checked. */
  get endingCount() {
    return this.streams.endingCount;
  }

  async setupStatus() {
    return { needs_setup: (await this.repo.countUsers()) === 0, allow_registration: await this.allowRegistration() };
  }

  /** The first admin: through the web page, or from ADMIN_EMAIL/ADMIN_PASSWORD at first start. */
  async setupFirstAdmin(input: { email: string; name: string; password: string }) {
    const row = await this.repo.insertFirstAdmin({ email: input.email, name: input.name, passwordHash: await hashPassword(input.password) });
    if (!row) throw conflict('The studio is already set up; sign in instead');
    return row;
  }

  async ensureAdminFromEnv(admin: { email: string; password: string }) {
    if ((await this.repo.countUsers()) > 0) return;
    await this.setupFirstAdmin({ email: admin.email, name: admin.email.split('@')[0], password: admin.password });
  }

  async login(email: string, password: string) {
    const row = await this.repo.findUserByEmail(email);
    const ok = row ? await verifyPassword(row.passwordHash, password) : await dummyVerify(password);
    if (!row || !ok) throw new AppError(401, 'unauthenticated', 'Wrong email or password');
    return row;
  }

  async register(input: { email: string; name: string; password: string }) {
    if (!(await this.allowRegistration())) throw forbidden('Registration is closed; ask an admin for an account');
    return this.createUser({ ...input, role: 'user' });
  }

  async createSession(userId: string) {
    const token = randomToken();
    const expiresAt = new Date(Date.now() + SESSION_TTL_MS);
    await this.repo.insertSession(sha256(token), userId, expiresAt);
    return { token, expiresAt };
  }

  async logout(sessionToken: string) {
    const id = sha256(sessionToken);
    const userId = await this.repo.deleteSession(id);
    if (!userId) return;
    this.known.forget(userId);
    this.streams.endCredential(userId, { kind: 'session', id });
  }

  userForSession(sessionToken: string): Promise<KnownCredential | null> {
    const id = sha256(sessionToken);
    return this.known.get(`session:${id}`, async () => {
      const found = await this.repo.findSessionUser(id);
      return found ? { user: toAuthUser(found.user), credential: { kind: 'session', id }, expiresAt: found.expiresAt } : null;
    });
  }

  userForApiToken(token: string): Promise<KnownCredential | null> {
    if (!token.startsWith(TOKEN_PREFIX)) return Promise.resolve(null);
    const hash = sha256(token);
    return this.known.get(`token:${hash}`, async () => {
      const found = await this.repo.findTokenUser(hash);
      if (!found) return null;
      // Touch at most once a minute: a busy script should not write on every call. Not awaited: the
      // request is not held behind runs' writes for a "last used" mark, and one that fails is made at
      // the next lookup (the mark stays old).
      if (!found.lastUsedAt || Date.now() - found.lastUsedAt.getTime() > 60_000) void this.repo.touchToken(found.tokenId).catch(() => {});
      return { user: toAuthUser(found.user), credential: { kind: 'token', id: found.tokenId }, expiresAt: null };
    });
  }

  async getUser(id: string) {
    const row = await this.repo.findUserById(id);
    if (!row) throw notFound('User');
    return row;
  }

  /** Signs the user out everywhere else: every other session and every API token ends, and their streams. */
  async changePassword(user: AuthUser, current: string, next: string, keep: Credential | null) {
    const row = await this.repo.findUserById(user.id);
    if (!row || !(await verifyPassword(row.passwordHash, current))) {
      throw new AppError(400, 'validation_error', 'current_password: wrong password', { fields: { current_password: 'Wrong password' } });
    }
    await this.repo.updateUser(user.id, { passwordHash: await hashPassword(next) });
    await this.endCredentialsOf(user.id, keep);
  }

  /** A new password means whoever held the old one is out: sessions, tokens and live streams, all but `keep`. */
  private async endCredentialsOf(userId: string, keep: Credential | null) {
    await this.repo.deleteCredentialsOf(userId, keep);
    this.known.forget(userId);
    this.streams.endUser(userId, keep);
  }

  async createApiToken(user: AuthUser, name: string) {
    const token = TOKEN_PREFIX + randomToken();
    const row = await this.repo.insertToken({ userId: user.id, name, prefix: token.slice(0, 10), tokenHash: sha256(token) });
    return { ...toApiToken(row), token };
  }

  listApiTokens = async (user: Pick<AuthUser, 'id'>) => (await this.repo.listTokens(user.id)).map(toApiToken);

  async revokeApiToken(user: AuthUser, id: string) {
    await this.revokeTokenOf(user.id, id);
  }

  private async revokeTokenOf(userId: string, id: string) {
    if (!(await this.repo.deleteToken(userId, id))) throw notFound('Token');
    this.known.forget(userId);
    this.streams.endCredential(userId, { kind: 'token', id });
  }

  // ---- admin ----
  listUsers = (page: number, pageSize: number, search?: string) => this.repo.listUsers(page, pageSize, search);

  async createUser(input: { email: string; name: string; password: string; role: Role }) {
    const row = await this.repo.insertUser({ email: input.email, name: input.name, role: input.role, passwordHash: await hashPassword(input.password) });
    if (!row) throw new AppError(409, 'conflict', 'A user with this email already exists', { fields: { email: 'Already registered' } });
    return row;
  }

  /** An admin's view of another user's tokens (names and prefixes, never the secret). */
  async listTokensOf(userId: string) {
    await this.getUser(userId);
    return this.listApiTokens({ id: userId });
  }

  /** An admin revokes a token of any user (a leaked script key, a departed colleague). */
  async revokeTokenAsAdmin(userId: string, tokenId: string) {
    await this.getUser(userId);
    await this.revokeTokenOf(userId, tokenId);
  }

  async updateUser(admin: AuthUser, id: string, patch: { name?: string; password?: string; role?: Role }, adminCredential: Credential | null) {
    const row = await this.repo.findUserById(id);
    if (!row) throw notFound('User');
    if (row.role === 'admin' && patch.role === 'user') await this.keepOneAdmin(admin, id);
    const updated = await this.repo.updateUser(id, {
      ...(patch.name !== undefined && { name: patch.name }),
      ...(patch.role !== undefined && { role: patch.role }),
      ...(patch.password !== undefined && { passwordHash: await hashPassword(patch.password) }),
    });
    // A reset password ends every way in that the old one gave, the admin's own session excepted.
    if (patch.password !== undefined) await this.endCredentialsOf(id, id === admin.id ? adminCredential : null);
    else this.known.forget(id); // a new role or name holds from the user's next request
    return updated;
  }

  async deleteUser(admin: AuthUser, id: string) {
    const row = await this.repo.findUserById(id);
    if (!row) throw notFound('User');
    if (row.role === 'admin') await this.keepOneAdmin(admin, id);
    await this.repo.deleteUser(id);
    this.known.forget(id);
    this.streams.endUser(id);
  }

  private async keepOneAdmin(_admin: AuthUser, _id: string) {
    if ((await this.repo.countAdmins()) <= 1) throw conflict('The studio needs at least one admin');
  }

  allowRegistration = () => this.repo.getSetting('allow_registration', false);
  async updateSettings(patch: { allow_registration?: boolean }) {
    if (patch.allow_registration !== undefined) await this.repo.setSetting('allow_registration', patch.allow_registration);
    return { allow_registration: await this.allowRegistration() };
  }
}

const toApiToken = (row: { id: string; name: string; prefix: string; createdAt: Date; lastUsedAt: Date | null }): ApiToken => ({
  id: row.id,
  name: row.name,
  prefix: row.prefix,
  created_at: row.createdAt.toISOString(),
  last_used_at: row.lastUsedAt?.toISOString() ?? null,
});

