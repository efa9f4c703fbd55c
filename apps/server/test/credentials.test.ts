import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, createUser, setupAdmin, startStudio, type TestStudio } from './helpers.ts';
import { holdAccessReads } from './hold-access-reads.ts';
import { follow, followOpened, type ReceivedEvent } from './sse-client.ts';

type StreamAuth = { cookie?: string; token?: string };

/** Issue 15, finding 3: a new password ends every other way in, and a signed-out user's live streams end. */
describe(`sessions, tokens and live streams end with the credential (${process.env.TEST_DB ?? 'pglite'})`, () => {
  let studio: TestStudio;
  let admin: Client;

  beforeAll(async () => {
    studio = await startStudio({ heartbeatMs: 100 });
    admin = await setupAdmin(studio);
  });
  afterAll(() => studio.close());

  /** A second signed-in device of the same user. */
  const signIn = async (email: string, password = 'password-' + email) => {
    const c = new Client(studio.url);
    expect((await c.post('/api/v1/auth/login', { email, password })).status).toBe(200);
    return c;
  };
  const tokenOf = async (c: Client) => {
    const created = await c.post('/api/v1/auth/tokens', { name: 'script' });
    expect(created.status).toBe(201);
    const script = new Client(studio.url);
    script.token = created.body.token;
    return Object.assign(script, { tokenId: created.body.id as string });
  };
  const projectOf = async (c: Client) => (await c.post('/api/v1/projects/', { name: 'streams', original_topic: 't' })).body.id as string;
  const updates = (events: ReceivedEvent[]) => events.filter((e) => e.data.type === 'project_update').length;
  /**
   * A project stream (it never ends by itself: if it closes, the server closed it), `opened` at its
   * hello, and `reached` at its `n`th project_update; `stop`: the client then ends it.
   */
  const watch = (projectId: string, auth: StreamAuth, n: number, stop: boolean) => {
    let reach!: () => void;
    const reached = new Promise<void>((r) => (reach = r));
    const { opened, result } = followOpened(`${studio.url}/api/v1/projects/${projectId}/events`, {
      ...auth,
      timeoutMs: 20_000,
      stopWhen: (events) => {
        if (updates(events) >= n) reach();
        return stop && updates(events) >= n;
      },
    });
    return { opened, reached, result };
  };
  /**
   * Resolves once the stream has said hello, so what follows hits an open stream; `.result` is the
   * stream's end (wrapped: an async function returning it would wait for it).
   */
  const opened = async (projectId: string, auth: StreamAuth) => {
    const { opened, result } = watch(projectId, auth, 1, false);
    await opened;
    return { result };
  };
  /** A stream open before the test goes on, that should outlive what it does: `changed` resolves at its second project_update, where it stops. */
  const survivor = async (projectId: string, auth: StreamAuth) => {
    const { opened, reached, result } = watch(projectId, auth, 2, true);
    await opened;
    return { changed: reached, result };
  };

  it('a password change ends every other session and every API token, and keeps the session that made it', async () => {
    const user = await createUser(studio, admin, 'changer@example.com');
    const laptop = await signIn('changer@example.com');
    const script = await tokenOf(user);
    expect((await script.get('/api/v1/auth/me')).status).toBe(200);

    const res = await user.post('/api/v1/auth/password', { current_password: 'password-changer@example.com', new_password: 'a brand new password' });
    expect(res.status).toBe(204);
    expect((await user.get('/api/v1/auth/me')).status).toBe(200);
    expect((await laptop.get('/api/v1/auth/me')).status).toBe(401);
    expect((await script.get('/api/v1/auth/me')).status).toBe(401);
    expect((await user.get('/api/v1/auth/tokens')).body).toEqual([]);
    expect((await new Client(studio.url).post('/api/v1/auth/login', { email: 'changer@example.com', password: 'a brand new password' })).status).toBe(200);
  });

  it('remembers a credential between requests, and a new role, a sign-out or a deleted account holds from the very next one', async () => {
    const user = await createUser(studio, admin, 'remembered@example.com');
    const script = await tokenOf(user);
    expect((await script.get('/api/v1/auth/me')).status).toBe(200);
    const lookups: string[] = [];
    const stop = studio.database.onStatement((q) => /from "(sessions|api_tokens)"/.test(q) && lookups.push(q));
    try {
      for (let i = 0; i < 3; i++) {
        expect((await user.get('/api/v1/auth/me')).status).toBe(200);
        expect((await script.get('/api/v1/auth/me')).status).toBe(200);
      }
    } finally {
      stop();
    }
    expect(lookups).toEqual([]); // each was read when first used, above

    expect((await user.get('/api/v1/users/')).status).toBe(403);
    expect((await admin.patch(`/api/v1/users/${user.id}/`, { role: 'admin' })).status).toBe(200);
    expect((await user.get('/api/v1/users/')).status).toBe(200);
    expect((await script.get('/api/v1/users/')).status).toBe(200);
    expect((await admin.patch(`/api/v1/users/${user.id}/`, { role: 'user' })).status).toBe(200);
    expect((await user.get('/api/v1/users/')).status).toBe(403);
    expect((await script.get('/api/v1/users/')).status).toBe(403);

    const laptop = await signIn('remembered@example.com');
    expect((await laptop.get('/api/v1/auth/me')).status).toBe(200);
    const signedOut = laptop.cookie;
    expect((await laptop.post('/api/v1/auth/logout')).status).toBe(204);
    laptop.cookie = signedOut; // the response cleared it; a copy kept elsewhere still tries
    expect((await laptop.get('/api/v1/auth/me')).status).toBe(401);
    expect((await user.get('/api/v1/auth/me')).status).toBe(200);

    expect((await admin.delete(`/api/v1/users/${user.id}/`)).status).toBe(204);
    expect((await user.get('/api/v1/auth/me')).status).toBe(401);
    expect((await script.get('/api/v1/auth/me')).status).toBe(401);
  });

  it("an admin's password reset ends every session and API token of that user", async () => {
    const user = await createUser(studio, admin, 'reset@example.com');
    const script = await tokenOf(user);
    expect((await admin.patch(`/api/v1/users/${user.id}/`, { password: 'reset by the admin' })).status).toBe(200);
    expect((await user.get('/api/v1/auth/me')).status).toBe(401);
    expect((await script.get('/api/v1/auth/me')).status).toBe(401);
    expect((await admin.get(`/api/v1/users/${user.id}/tokens/`)).body).toEqual([]);
    expect((await admin.get('/api/v1/auth/me')).status).toBe(200);
  });

  it("an admin lists and revokes another user's tokens (never their secret); nobody else can", async () => {
    const user = await createUser(studio, admin, 'scripter@example.com');
    const other = await createUser(studio, admin, 'other@example.com');
    const script = await tokenOf(user);
    const list = await admin.get(`/api/v1/users/${user.id}/tokens/`);
    expect(list.status).toBe(200);
    expect(list.body).toEqual([expect.objectContaining({ id: script.tokenId, name: 'script', prefix: script.token.slice(0, 10) })]);
    expect(JSON.stringify(list.body)).not.toContain(script.token);

    expect((await other.get(`/api/v1/users/${user.id}/tokens/`)).status).toBe(403);
    expect((await other.delete(`/api/v1/users/${user.id}/tokens/${script.tokenId}/`)).status).toBe(403);
    expect((await script.delete(`/api/v1/users/${user.id}/tokens/${script.tokenId}/`)).status).toBe(403); // not even with the token itself
    // A token is revoked under its own user only: another user's id does not reach it.
    expect((await admin.delete(`/api/v1/users/${other.id}/tokens/${script.tokenId}/`)).status).toBe(404);
    expect((await admin.get(`/api/v1/users/${crypto.randomUUID()}/tokens/`)).status).toBe(404);

    expect((await script.get('/api/v1/auth/me')).status).toBe(200);
    expect((await admin.delete(`/api/v1/users/${user.id}/tokens/${script.tokenId}/`)).status).toBe(204);
    expect((await script.get('/api/v1/auth/me')).status).toBe(401);
    expect((await admin.get(`/api/v1/users/${user.id}/tokens/`)).body).toEqual([]);

    const spec = (await new Client(studio.url).get('/docs/json')).body;
    expect(spec.paths['/api/v1/users/{id}/tokens']?.get).toBeDefined();
    expect(spec.paths['/api/v1/users/{id}/tokens/{token_id}']?.delete).toBeDefined();
  });

  it('signing out ends the live streams opened with that session, not those of another device', async () => {
    const user = await createUser(studio, admin, 'watcher@example.com');
    const phone = await signIn('watcher@example.com');
    const projectId = await projectOf(user);
    const onLaptop = await opened(projectId, { cookie: user.cookie });
    const onPhone = await survivor(projectId, { cookie: phone.cookie });

    expect((await user.post('/api/v1/auth/logout')).status).toBe(204);
    expect((await onLaptop.result).ended).toBe('closed');
    // The phone's stream is still live: it sees the next change.
    expect((await phone.patch(`/api/v1/projects/${projectId}/`, { name: 'renamed' })).status).toBe(200);
    await onPhone.changed;
    expect((await onPhone.result).ended).toBe('aborted');
  });

  it("refuses a stream whose session is signed out while it opens (after its checks, before it is filed), not another device's", async () => {
    const user = await createUser(studio, admin, 'opening@example.com');
    const phone = await signIn('opening@example.com');
    const projectId = await projectOf(user);
    // Both streams' access reads answer, then wait while the laptop's session signs out.
    const reads = holdAccessReads(2);
    try {
      const url = `${studio.url}/api/v1/projects/${projectId}/events`;
      const onLaptop = follow(url, { cookie: user.cookie, timeoutMs: 10_000 });
      const onPhone = follow(url, { cookie: phone.cookie, stopWhen: (events) => events.length > 0, timeoutMs: 10_000 });
      await reads.read;
      expect((await user.post('/api/v1/auth/logout')).status).toBe(204);
      reads.release();
      expect((await onLaptop).status).toBe(401);
      expect((await onPhone).status).toBe(200);
    } finally {
      reads.restore();
    }
  });

  it('a password change ends the live streams of every other session and token; the changing session keeps its own', async () => {
    const user = await createUser(studio, admin, 'streamer@example.com');
    const laptop = await signIn('streamer@example.com');
    const script = await tokenOf(user);
    const projectId = await projectOf(user);
    const byLaptop = await opened(projectId, { cookie: laptop.cookie });
    const byScript = await opened(projectId, { token: script.token });
    const mine = await survivor(projectId, { cookie: user.cookie });

    expect((await user.post('/api/v1/auth/password', { current_password: 'password-streamer@example.com', new_password: 'another new password' })).status).toBe(204);
    expect((await byLaptop.result).ended).toBe('closed');
    expect((await byScript.result).ended).toBe('closed');
    expect((await user.patch(`/api/v1/projects/${projectId}/`, { name: 'still live' })).status).toBe(200);
    await mine.changed;
    expect((await mine.result).ended).toBe('aborted');
  });

  it("an admin's password reset or deleting the account ends the user's live streams", async () => {
    const reset = await createUser(studio, admin, 'reset-streams@example.com');
    const resetStream = await opened(await projectOf(reset), { cookie: reset.cookie });
    expect((await admin.patch(`/api/v1/users/${reset.id}/`, { password: 'new password by admin' })).status).toBe(200);
    expect((await resetStream.result).ended).toBe('closed');

    const gone = await createUser(studio, admin, 'gone@example.com');
    const script = await tokenOf(gone);
    const goneStream = await opened(await projectOf(gone), { token: script.token });
    expect((await admin.delete(`/api/v1/users/${gone.id}/`)).status).toBe(204);
    expect((await goneStream.result).ended).toBe('closed');
  });

  it('revoking a token ends the live streams opened with it', async () => {
    const user = await createUser(studio, admin, 'revoker@example.com');
    const script = await tokenOf(user);
    const stream = await opened(await projectOf(user), { token: script.token });
    expect((await user.delete(`/api/v1/auth/tokens/${script.tokenId}/`)).status).toBe(204);
    expect((await stream.result).ended).toBe('closed');
  });
});
