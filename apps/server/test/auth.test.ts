import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, Client, createUser, setupAdmin, startStudio, type TestStudio } from './helpers.ts';

describe(`accounts (${process.env.TEST_DB ?? 'pglite'})`, () => {
  let studio: TestStudio;
  let admin: Client;

  beforeAll(async () => {
    studio = await startStudio();
  });
  afterAll(() => studio.close());

  it('asks for the first admin, creates it once, and signs them in with an httpOnly SameSite=Lax cookie', async () => {
    const anon = new Client(studio.url);
    expect((await anon.get('/api/v1/auth/setup')).body).toEqual({ needs_setup: true, allow_registration: false });
    expect((await anon.get('/api/v1/projects/')).status).toBe(401);

    admin = new Client(studio.url);
    const res = await admin.request('POST', '/api/v1/auth/setup', ADMIN);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ email: ADMIN.email, role: 'admin' });
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Lax/i);
    expect((await admin.get('/api/v1/auth/me')).body.email).toBe(ADMIN.email);

    const again = await new Client(studio.url).post('/api/v1/auth/setup', { ...ADMIN, email: 'other@example.com' });
    expect(again.status).toBe(409);
    expect((await anon.get('/api/v1/auth/setup')).body.needs_setup).toBe(false);
  });

  it('signs in and out; a signed-out session is revoked on the server', async () => {
    const c = new Client(studio.url);
    expect((await c.post('/api/v1/auth/login', { email: ADMIN.email, password: 'wrong password' })).status).toBe(401);
    expect((await c.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password })).status).toBe(200);
    const session = c.cookie;
    expect((await c.get('/api/v1/auth/me')).status).toBe(200);
    expect((await c.post('/api/v1/auth/logout')).status).toBe(204);
    const replay = new Client(studio.url);
    replay.cookie = session;
    expect((await replay.get('/api/v1/auth/me')).status).toBe(401);
  });

  it('stores passwords with argon2id, never in clear', async () => {
    const { sql } = await import('drizzle-orm');
    const r: any = await studio.database.db.execute(sql`select password_hash from users`);
    const hash = (r.rows ?? r)[0].password_hash as string;
    expect(hash.startsWith('$argon2id$')).toBe(true);
    expect(hash).not.toContain(ADMIN.password);
  });

  it('lets a user create a personal API token, shown once and stored hashed, usable as Bearer and revocable', async () => {
    const created = await admin.post('/api/v1/auth/tokens', { name: 'script' });
    expect(created.status).toBe(201);
    const token = created.body.token as string;
    expect(token).toMatch(/^ais_/);
    const list = await admin.get('/api/v1/auth/tokens');
    expect(JSON.stringify(list.body)).not.toContain(token);

    const script = new Client(studio.url);
    script.token = token;
    expect((await script.get('/api/v1/auth/me')).body.email).toBe(ADMIN.email);
    // Bearer writes are not subject to the same-origin check (a foreign site cannot attach the header).
    expect((await script.post('/api/v1/projects/', { name: 'via token' }, { origin: 'https://elsewhere.example' })).status).toBe(201);

    expect((await admin.delete(`/api/v1/auth/tokens/${created.body.id}/`)).status).toBe(204);
    expect((await script.get('/api/v1/auth/me')).status).toBe(401);
  });

  it('refuses a cookie-authenticated write that comes from another site (CSRF)', async () => {
    const before = (await admin.get('/api/v1/projects/')).body.count;
    const crossOrigin = await admin.post('/api/v1/projects/', { name: 'evil' }, { origin: 'https://evil.example' });
    expect(crossOrigin.status).toBe(403);
    const crossSite = await admin.post('/api/v1/projects/', { name: 'evil' }, { 'sec-fetch-site': 'cross-site' });
    expect(crossSite.status).toBe(403);
    const sameOrigin = await admin.post('/api/v1/projects/', { name: 'fine' }, { origin: studio.url, 'sec-fetch-site': 'same-origin' });
    expect(sameOrigin.status).toBe(201);
    expect((await admin.get('/api/v1/projects/')).body.count).toBe(before + 1);
  });

  it('lets admins manage users and open self-registration; non-admins cannot', async () => {
    const bob = await createUser(studio, admin, 'bob@example.com');
    expect((await bob.get('/api/v1/users/')).status).toBe(403);
    expect((await bob.post('/api/v1/users/', { email: 'x@example.com', name: 'x', password: 'password1' })).status).toBe(403);
    expect((await bob.patch('/api/v1/settings/', { allow_registration: true })).status).toBe(403);

    const anon = new Client(studio.url);
    const closed = await anon.post('/api/v1/auth/register', { email: 'carol@example.com', name: 'Carol', password: 'password1' });
    expect(closed.status).toBe(403);
    expect((await admin.patch('/api/v1/settings/', { allow_registration: true })).body).toEqual({ allow_registration: true });
    const open = await anon.post('/api/v1/auth/register', { email: 'carol@example.com', name: 'Carol', password: 'password1' });
    expect(open.status).toBe(201);
    expect(open.body.role).toBe('user');
    expect((await anon.post('/api/v1/auth/register', { email: 'carol@example.com', name: 'C', password: 'password1' })).status).toBe(409);

    const users = await admin.get('/api/v1/users/?search=carol');
    expect(users.body.count).toBe(1);
    expect((await admin.patch(`/api/v1/users/${bob.id}/`, { role: 'admin' })).body.role).toBe('admin');
    expect((await admin.delete(`/api/v1/users/${bob.id}/`)).status).toBe(204);
    expect((await bob.get('/api/v1/auth/me')).status).toBe(401);
  });

  it('searches users for % and _ literally, not as LIKE wildcards', async () => {
    await createUser(studio, admin, 'under_score@example.com');
    await createUser(studio, admin, 'underxscore@example.com');
    expect((await admin.get('/api/v1/users/?search=under_score')).body.results.map((u: any) => u.email)).toEqual(['under_score@example.com']);
    expect((await admin.get('/api/v1/users/?search=%25')).body.count).toBe(0);
    expect((await admin.get('/api/v1/users/?search=under%25score')).body.count).toBe(0);
  });

  it('sets the session cookie Secure behind a TLS proxy only when TRUST_PROXY says to believe it', async () => {
    const login = (c: Client) => c.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password }, { 'x-forwarded-proto': 'https' });
    const direct = await login(new Client(studio.url));
    expect(direct.status).toBe(200);
    expect(direct.headers.get('set-cookie')).not.toMatch(/;\s*Secure/i); // a forged header from a client is not believed

    const proxied = await startStudio({ trustProxy: ['127.0.0.1'] });
    try {
      await setupAdmin(proxied);
      const viaProxy = await login(new Client(proxied.url));
      expect(viaProxy.status).toBe(200);
      expect(viaProxy.headers.get('set-cookie')).toMatch(/;\s*Secure/i);
      const plain = await new Client(proxied.url).post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password }, { 'x-forwarded-proto': 'http' });
      expect(plain.headers.get('set-cookie')).not.toMatch(/;\s*Secure/i);
    } finally {
      await proxied.close();
    }
  });

  it('rate-limits login attempts', async () => {
    const limited = await startStudio({ loginRateLimit: 3 });
    try {
      const c = new Client(limited.url);
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await c.post('/api/v1/auth/login', { email: 'x@example.com', password: 'nope-nope' })).status);
      expect(statuses.slice(0, 3)).toEqual([401, 401, 401]);
      expect(statuses[4]).toBe(429);
      const last = await c.post('/api/v1/auth/login', { email: 'x@example.com', password: 'nope-nope' });
      expect(last.body.error.code).toBe('rate_limited');
    } finally {
      await limited.close();
    }
  });

  it('creates the admin from ADMIN_EMAIL/ADMIN_PASSWORD at first start', async () => {
    const headless = await startStudio({ admin: { email: 'ops@example.com', password: 'from-the-env-1' } });
    try {
      const c = new Client(headless.url);
      expect((await c.get('/api/v1/auth/setup')).body.needs_setup).toBe(false);
      expect((await c.post('/api/v1/auth/login', { email: 'ops@example.com', password: 'from-the-env-1' })).body.role).toBe('admin');
    } finally {
      await headless.close();
    }
  });
});
