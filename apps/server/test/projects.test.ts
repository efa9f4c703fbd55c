import { STAGE_KEYS } from '@ai-story/contracts';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, createUser, setupAdmin, snapshot, startStudio, TEST_DB, type TestStudio } from './helpers.ts';

describe(`projects (${process.env.TEST_DB ?? 'pglite'})`, () => {
  let studio: TestStudio;
  let alice: Client;
  let mallory: Client;
  let projectId: string;

  beforeAll(async () => {
    studio = await startStudio();
    const admin = await setupAdmin(studio);
    alice = await createUser(studio, admin, 'alice@example.com');
    mallory = await createUser(studio, admin, 'mallory@example.com');
  });
  afterAll(() => studio.close());

  it('creates a project exactly as the seed does, with six pending stage records', async () => {
    const res = await alice.post('/api/v1/projects/', { name: '测试项目', original_topic: '介绍AI技术的发展历程' });
    expect(res.status).toBe(201);
    projectId = res.body.id;
    expect(res.body).toMatchObject({ name: '测试项目', original_topic: '介绍AI技术的发展历程', status: 'draft', description: '' });
    const stages = await alice.get(`/api/v1/projects/${projectId}/stages/`);
    expect(stages.body.map((s: any) => s.stage_type)).toEqual([...STAGE_KEYS]);
    expect(stages.body.every((s: any) => s.status === 'pending')).toBe(true);
  });

  it('lists, searches, pages, renames and deletes', async () => {
    for (let i = 1; i <= 5; i++) await alice.post('/api/v1/projects/', { name: `Story ${i}`, original_topic: i === 4 ? '雨夜的街头，一个女孩' : 't' });
    const page1 = await alice.get('/api/v1/projects/?page=1&page_size=4');
    expect(page1.body.count).toBe(6);
    expect(page1.body.results).toHaveLength(4);
    const page2 = await alice.get('/api/v1/projects/?page=2&page_size=4');
    expect(page2.body.results).toHaveLength(2);
    const ids = new Set([...page1.body.results, ...page2.body.results].map((p: any) => p.id));
    expect(ids.size).toBe(6);

    expect((await alice.get('/api/v1/projects/?search=story%203')).body.results.map((p: any) => p.name)).toEqual(['Story 3']);
    expect((await alice.get('/api/v1/projects/?search=%25')).body.count).toBe(0); // % is a literal, not a wildcard
    // The search box says "name or topic": a word of the topic finds its project.
    expect((await alice.get(`/api/v1/projects/?search=${encodeURIComponent('雨夜')}`)).body.results.map((p: any) => p.name)).toEqual(['Story 4']);

    const target = page1.body.results.find((p: any) => p.name === 'Story 2');
    const renamed = await alice.patch(`/api/v1/projects/${target.id}`, { name: '新的名字' });
    expect(renamed.status).toBe(200);
    expect((await alice.get(`/api/v1/projects/${target.id}/`)).body.name).toBe('新的名字');
    expect((await alice.delete(`/api/v1/projects/${target.id}/`)).status).toBe(204);
    expect((await alice.get(`/api/v1/projects/${target.id}/`)).status).toBe(404);
  });

  it.skipIf(TEST_DB !== 'postgres')("answers the project list, a project's page and its panels while every connection of the main pool is taken (PostgreSQL)", async () => {
    // As in a burst of run starts: transactions on every connection of the pool, and a statement
    // queued behind them. They wait on a lock held outside the studio until the list has answered.
    const first = (await alice.post('/api/v1/projects/', { name: 'pool 1', original_topic: 't' })).body;
    await alice.post('/api/v1/projects/', { name: 'pool 2', original_topic: 't' });
    // A credential the studio has not seen yet: its lookup is made during the burst, too.
    const token = (await alice.post('/api/v1/auth/tokens', { name: 'script' })).body.token as string;
    const withToken = () => fetch(`${studio.url}/api/v1/projects/?page_size=1`, { headers: { authorization: `Bearer ${token}` } }).then(async (r) => ({ status: r.status, body: await r.json() }));
    // The project's stream answers once it has checked access and read the runs in progress; its first bytes are enough.
    const stream = new AbortController();
    const projectStream = () => fetch(`${studio.url}/api/v1/projects/${first.id}/events?tokens=0`, { headers: { cookie: alice.cookie }, signal: stream.signal });
    // What the page's panels open with: each checks that the user may view the project, then reads what it shows.
    const panels = [
      `/api/v1/projects/${first.id}/stages/rewrite/runs/?page=1&page_size=20`,
      `/api/v1/projects/${first.id}/stages/image/settings/`,
      `/api/v1/projects/${first.id}/prompt-set/`,
      `/api/v1/projects/${first.id}/storyboards/`,
      `/api/v1/projects/${first.id}/camera-movements/`,
      `/api/v1/projects/${first.id}/characters/`,
      '/api/v1/prompts/sets/?page_size=100',
      '/api/v1/auth/me',
    ];
    const holder = postgres(studio.testDb.location.databaseUrl!, { max: 1 });
    await holder`select pg_advisory_lock(4217)`;
    const held = Array.from({ length: studio.database.poolSize }, () => studio.database.db.transaction((tx) => tx.execute(sql`select pg_advisory_xact_lock(4217)`)));
    let queuedAnswered = false;
    const queued = studio.database.db.execute(sql`select 1`).then(() => (queuedAnswered = true));
    try {
      // Bounded, so that a read stuck behind the pool fails here and the lock is still let go.
      const stuck = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('a read waited behind the full pool')), 10_000).unref());
      const [list, page, stages, byToken, followed, opened] = await Promise.race([
        Promise.all([
          alice.get('/api/v1/projects/?page_size=2'),
          alice.get(`/api/v1/projects/${first.id}/`),
          alice.get(`/api/v1/projects/${first.id}/stages/`),
          withToken(),
          projectStream(),
          Promise.all(panels.map((url) => alice.get(url))),
        ]),
        stuck,
      ]);
      expect(list.body.results).toHaveLength(2);
      expect(byToken.status).toBe(200);
      expect(byToken.body.results).toHaveLength(1);
      expect(page.body).toMatchObject({ id: first.id, name: 'pool 1' });
      expect(stages.body.map((s: any) => s.stage_type)).toEqual([...STAGE_KEYS]);
      expect(followed.status).toBe(200);
      expect(followed.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(opened.map((r) => r.status)).toEqual(panels.map(() => 200));
      expect(opened[0].body).toEqual({ count: 0, results: [] });
      expect(opened[2].body).toEqual({ prompt_set_id: null, prompt_set_name: null });
      expect(opened[3].body).toMatchObject({ count: 0, results: [] });
      expect(opened[4].body).toEqual({ count: 0, results: [] });
      expect(opened[6].body.count).toBeGreaterThan(0); // the built-in default set
      expect(opened[7].body).toMatchObject({ email: 'alice@example.com' });
      expect(queuedAnswered).toBe(false); // the pool was indeed full: these reads did not go through it
    } finally {
      stream.abort();
      await holder`select pg_advisory_unlock(4217)`;
      await Promise.all([...held, queued]);
      await holder.end();
    }
  });

  it("does not let a second user read, change, delete or list the first user's project", async () => {
    expect((await mallory.get(`/api/v1/projects/${projectId}/`)).status).toBe(404);
    expect((await mallory.get(`/api/v1/projects/${projectId}/stages/`)).status).toBe(404);
    expect((await mallory.patch(`/api/v1/projects/${projectId}/`, { name: 'pwned' })).status).toBe(404);
    expect((await mallory.delete(`/api/v1/projects/${projectId}/`)).status).toBe(404);
    expect((await mallory.get('/api/v1/projects/')).body).toEqual({ count: 0, results: [] });
    expect((await mallory.get('/api/v1/projects/?search=测试')).body.count).toBe(0);
    expect((await alice.get(`/api/v1/projects/${projectId}/`)).body.name).toBe('测试项目');
  });

  it('answers adding a member by email the same for an unknown address as for an account (no id, no name)', async () => {
    const shared = (await alice.post('/api/v1/projects/', { name: 'shared', original_topic: 't' })).body.id;
    const known = await alice.post(`/api/v1/projects/${shared}/members/`, { email: 'Mallory@example.com', role: 'viewer' });
    const unknown = await alice.post(`/api/v1/projects/${shared}/members/`, { email: 'nobody@example.com', role: 'viewer' });
    expect([known.status, unknown.status]).toEqual([202, 202]);
    expect(known.body).toEqual({ email: 'mallory@example.com', role: 'viewer' });
    expect(unknown.body).toEqual({ email: 'nobody@example.com', role: 'viewer' });
    // The account that has the address is a member now; the unknown one added nothing.
    expect((await alice.get(`/api/v1/projects/${shared}/members/`)).body.map((m: any) => m.email)).toEqual(['mallory@example.com']);
    expect((await mallory.get(`/api/v1/projects/${shared}/`)).body.access).toBe('viewer');
    const self = await alice.post(`/api/v1/projects/${shared}/members/`, { email: 'alice@example.com', role: 'editor' });
    expect(self.status).toBe(400);
    expect(self.body.error.details.fields).toEqual({ email: 'Owner' });
    expect((await alice.delete(`/api/v1/projects/${shared}/`)).status).toBe(204);
  });

  const long = (n: number) => 'x'.repeat(n);
  it.each([
    ['empty name', { name: '', original_topic: 't' }, 'name'],
    ['blank name', { name: '   ', original_topic: 't' }, 'name'],
    ['over-long name', { name: long(201), original_topic: 't' }, 'name'],
    ['over-long topic', { name: 'ok', original_topic: long(50_001) }, 'original_topic'],
    ['wrong type', { name: 42, original_topic: 't' }, 'name'],
    ['wrong topic type', { name: 'ok', original_topic: ['a'] }, 'original_topic'],
    ['missing name', { original_topic: 't' }, 'name'],
    ['malformed JSON', '{"name": "x",', 'body'],
  ])('rejects %s with 400 naming the field and changes nothing', async (_label, body, field) => {
    const before = await snapshot(studio.database);
    const res = await alice.request('POST', '/api/v1/projects/', body, { 'content-type': 'application/json' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_error');
    expect(Object.keys(res.body.error.details.fields)).toContain(field);
    expect(await snapshot(studio.database)).toEqual(before);
  });

  it.each([
    ['PATCH', `/api/v1/projects/{id}/`, { name: '' }, 400, 'name'],
    ['PATCH', `/api/v1/projects/{id}/`, { original_topic: 7 }, 400, 'original_topic'],
    ['GET', '/api/v1/projects/not-a-uuid/', undefined, 404, null],
    ['DELETE', '/api/v1/projects/123/', undefined, 404, null],
    ['GET', '/api/v1/projects/00000000-0000-4000-8000-000000000000/', undefined, 404, null],
    ['GET', '/api/v1/projects/{id}/stages/nonsense/runs/', undefined, 404, null],
    ['GET', '/api/v1/projects/?page=abc', undefined, 400, 'page'],
    ['GET', '/api/v1/projects/?page_size=1000', undefined, 400, 'page_size'],
  ])('%s %s with bad input is refused (404 or 400 naming the field) and changes nothing', async (method, url, body, status, field) => {
    const before = await snapshot(studio.database);
    const res = await alice.request(method, url.replace('{id}', projectId), body);
    expect(res.status).toBe(status);
    if (field) expect(Object.keys(res.body.error.details.fields)).toContain(field);
    else expect(res.body.error.code).toBe('not_found');
    expect(await snapshot(studio.database)).toEqual(before);
  });

  it('keeps users, sessions and projects across a restart', async () => {
    await studio.close({ keepDatabase: true });
    studio = await startStudio({}, studio.testDb);
    const sameSession = new Client(studio.url);
    sameSession.cookie = alice.cookie;
    expect((await sameSession.get('/api/v1/auth/me')).body.email).toBe('alice@example.com');
    expect((await sameSession.get(`/api/v1/projects/${projectId}/`)).body.name).toBe('测试项目');
    alice = Object.assign(sameSession, {});
  });

  it('serves the OpenAPI documentation generated from the zod schemas', async () => {
    const spec = await new Client(studio.url).get('/docs/json');
    expect(spec.status).toBe(200);
    const post = (spec.body.paths['/api/v1/projects'] ?? spec.body.paths['/api/v1/projects/']).post;
    expect(post.requestBody.content['application/json'].schema.properties.original_topic.maxLength).toBe(50_000);
  });
});
