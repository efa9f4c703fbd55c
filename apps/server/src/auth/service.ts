import type { ApiToken, Role, User } from '@ai-story/contracts';
import { randomToken, sha256 } from '../crypto/cipher.ts';
import type { UserRow } from '../db/schema.ts';
import { AppError, conflict, forbidden, notFound } from '../errors.ts';
import { dummyVerify, hashPassword, verifyPassword } from './password.ts';
import type { AuthRepository } from './repository.ts';

export interface AuthUser {
  id: string;
  email: string;
  name: string;
  role: Role;
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
  constructor(private readonly repo: AuthRepository) {}

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

  logout = (sessionToken: string) => this.repo.deleteSession(sha256(sessionToken));

  async userForSession(sessionToken: string): Promise<AuthUser | null> {
    const found = await this.repo.findSessionUser(sha256(sessionToken));
    return found ? toAuthUser(found.user) : null;
  }

  async userForApiToken(token: string): Promise<AuthUser | null> {
    if (!token.startsWith(TOKEN_PREFIX)) return null;
    const found = await this.repo.findTokenUser(sha256(token));
    if (!found) return null;
    // Touch at most once a minute: a busy script should not write on every call.
    if (!found.lastUsedAt || Date.now() - found.lastUsedAt.getTime() > 60_000) await this.repo.touchToken(found.tokenId);
    return toAuthUser(found.user);
  }

  async getUser(id: string) {
    const row = await this.repo.findUserById(id);
    if (!row) throw notFound('User');
    return row;
  }

  async changePassword(user: AuthUser, current: string, next: string) {
    const row = await this.repo.findUserById(user.id);
    if (!row || !(await verifyPassword(row.passwordHash, current))) {
      throw new AppError(400, 'validation_error', 'current_password: wrong password', { fields: { current_password: 'Wrong password' } });
    }
    await this.repo.updateUser(user.id, { passwordHash: await hashPassword(next) });
    await this.repo.deleteSessionsOf(user.id); // sign out everywhere else; the caller gets a fresh session
  }

  async createApiToken(user: AuthUser, name: string) {
    const token = TOKEN_PREFIX + randomToken();
    const row = await this.repo.insertToken({ userId: user.id, name, prefix: token.slice(0, 10), tokenHash: sha256(token) });
    return { ...toApiToken(row), token };
  }

  listApiTokens = async (user: AuthUser) => (await this.repo.listTokens(user.id)).map(toApiToken);

  async revokeApiToken(user: AuthUser, id: string) {
    if (!(await this.repo.deleteToken(user.id, id))) throw notFound('Token');
  }

  // ---- admin ----
  listUsers = (page: number, pageSize: number, search?: string) => this.repo.listUsers(page, pageSize, search);

  async createUser(input: { email: string; name: string; password: string; role: Role }) {
    const row = await this.repo.insertUser({ email: input.email, name: input.name, role: input.role, passwordHash: await hashPassword(input.password) });
    if (!row) throw new AppError(409, 'conflict', 'A user with this email already exists', { fields: { email: 'Already registered' } });
    return row;
  }

  async updateUser(admin: AuthUser, id: string, patch: { name?: string; password?: string; role?: Role }) {
    const row = await this.repo.findUserById(id);
    if (!row) throw notFound('User');
    if (row.role === 'admin' && patch.role === 'user') await this.keepOneAdmin(admin, id);
    const updated = await this.repo.updateUser(id, {
      ...(patch.name !== undefined && { name: patch.name }),
      ...(patch.role !== undefined && { role: patch.role }),
      ...(patch.password !== undefined && { passwordHash: await hashPassword(patch.password) }),
    });
    if (patch.password !== undefined) await this.repo.deleteSessionsOf(id);
    return updated;
  }

  async deleteUser(admin: AuthUser, id: string) {
    const row = await this.repo.findUserById(id);
    if (!row) throw notFound('User');
    if (row.role === 'admin') await this.keepOneAdmin(admin, id);
    await this.repo.deleteUser(id);
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

