import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { startFakeLlm } from '@ai-story/fake-llm';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CREDENTIAL_MEMORY_MS } from '../src/auth/known-credentials.ts';
import { RedisRunEvents } from '../src/runs/redis-events.ts';
import { ADMIN, Client, createTestDatabase, createUser, endedRun, expectedRewrite, setupAdmin, spawnStudio, startStudio, startStudioProcess, TEST_DB, type TestStudio } from './helpers.ts';
import { follow, terminal, type ReceivedEvent } from './sse-client.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
type Fake = Awaited<ReturnType<typeof startFakeLlm>>;

const increasing = (ids: number[]) => ids.every((id, i) => i === 0 || id > ids[i - 1]);
const tokenCount = (events: ReceivedEvent[]) => events.filter((e) => e.data.type === 'token').length;

describe.skipIf(TEST_DB !== 'postgres')('scale-out: studio instances sharing PostgreSQL and Redis', () => {
  let fake: Fake;
  let a: TestStudio;
  let b: TestStudio;
  let admin: Client;
  let providerId: string;
  let slowProviderId: string;
  const prefix = `test-${randomUUID()}:`;
  const redis = new Redis(REDIS_URL, { lazyConnect: true });

  const runUrl = (studio: { url: string }, runId: string) => `${studio.url}/api/v1/runs/${runId}/events`;

  const startRun = async (provider = providerId) => {
    const project = await admin.post('/api/v1/projects/', { name: 'scale-out', original_topic: '深夜的地铁站里，一位老人在等最后一班车 🚇' });
    const run = await admin.post(`/api/v1/projects/${project.body.id}/stages/rewrite/runs/`, { input: {}, provider_id: provider });
    expect(run.status, JSON.stringify(run.body)).toBe(202);
    return { projectId: project.body.id as string, run: run.body as { id: string; prompt: string; model: string } };
  };

  const expectedFor = expectedRewrite;

  const saved = (runId: string) => endedRun(admin, runId);

  beforeAll(async () => {
    fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    // A 10 s lease: the instances look for a crashed one's runs every 5 s.
    const shared = { redisUrl: REDIS_URL, redisPrefix: prefix, heartbeatMs: 200, instanceLeaseMs: 10_000 };
    a = await startStudio(shared);
    b = await startStudio(shared, a.testDb);
    admin = await setupAdmin(a);
    const provider = async (name: string, model: string) => (await admin.post('/api/v1/models/providers/', { name, api_url: fake.url, model_name: model })).body.id as string;
    providerId = await provider('steady', 'fake-model?ttft=20&tps=150&tokens=300');
    slowProviderId = await provider('slow', 'fake-model?ttft=20&tps=40&tokens=2000');
    await redis.connect();
  });
  afterAll(async () => {
    await b?.close({ keepDatabase: true });
    await a?.close();
    await fake?.close();
    // This file's streams: nothing of it stays in the shared Redis.
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it('follows a run started through one instance live from another, token by token, to the exact saved text', async () => {
    const { run } = await startRun();
    const followed = await follow(runUrl(b, run.id), { cookie: admin.cookie });
    const final = await saved(run.id);
    expect(final.status).toBe('completed');
    expect(final.text).toBe(expectedFor(run));
    expect(followed.text).toBe(final.text);
    // Live: the deltas as they were made, not the run replayed as one compacted event afterwards.
    expect(tokenCount(followed.events)).toBeGreaterThan(5);
    expect(followed.events[0].data).toMatchObject({ type: 'stage_update', status: 'running' });
    expect(followed.events.at(-1)!.data).toMatchObject({ type: 'done', full_text: final.text });
    expect(increasing(followed.events.map((e) => e.id))).toBe(true);
  });

  it('resumes with Last-Event-ID on any instance: no gap, no duplicate', async () => {
    const { run } = await startRun();
    const first = await follow(runUrl(b, run.id), { cookie: admin.cookie, stopWhen: (e) => tokenCount(e) >= 5 });
    expect(first.ended).toBe('aborted');
    const second = await follow(runUrl(a, run.id), { cookie: admin.cookie, lastEventId: first.events.at(-1)!.id, stopWhen: (e) => tokenCount(e) >= 5 });
    const third = await follow(runUrl(b, run.id), { cookie: admin.cookie, lastEventId: second.events.at(-1)!.id });
    const all = [...first.events, ...second.events, ...third.events];
    expect(all.some((e) => e.data.type === 'reset')).toBe(false);
    expect(increasing(all.map((e) => e.id))).toBe(true);
    const final = await saved(run.id);
    expect(first.text + second.text + third.text).toBe(final.text);
    expect(final.text).toBe(expectedFor(run));
    // Resuming from the terminal event: nothing more to send, on either instance.
    const last = third.events.at(-1)!;
    expect(last.data.type).toBe('done');
    for (const studio of [a, b]) expect((await follow(runUrl(studio, run.id), { cookie: admin.cookie, lastEventId: last.id })).status).toBe(204);
  });

  it("shows another instance's run in a project stream, to newcomers mid-run too, with the project stream's own increasing ids", async () => {
    const project = await admin.post('/api/v1/projects/', { name: 'project stream', original_topic: '一只猫在雨夜里寻找回家的路 🐱🌧️' });
    const projectId = project.body.id as string;
    let runId = '';
    let connected!: () => void;
    const isConnected = new Promise<void>((r) => (connected = r));
    const ended = (events: ReceivedEvent[]) => events.some((e) => e.data.type === 'done' && e.data.run_id === runId);
    // Followed on B from before the run: it also hears the project's state change that A makes at the end.
    const completedUpdate = (e: ReceivedEvent) => e.data.type === 'project_update' && e.data.stages.some((s: { stage_type: string; status: string }) => s.stage_type === 'rewrite' && s.status === 'completed');
    const early = follow(`${b.url}/api/v1/projects/${projectId}/events`, {
      cookie: admin.cookie,
      stopWhen: (events) => {
        connected();
        return runId !== '' && ended(events) && events.some(completedUpdate);
      },
    });
    await isConnected; // its first event (the project's state) came: the stream is followed
    const run = await admin.post(`/api/v1/projects/${projectId}/stages/rewrite/runs/`, { input: {}, provider_id: providerId });
    expect(run.status).toBe(202);
    runId = run.body.id;
    // Newcomers on both instances once the run has made some text: the text so far, then the tail.
    await follow(runUrl(b, runId), { cookie: admin.cookie, stopWhen: (e) => tokenCount(e) >= 10 });
    const late = await Promise.all([a, b, a, b].map((studio, i) => follow(`${studio.url}/api/v1/projects/${projectId}/events${i > 1 ? '?tokens=0' : ''}`, { cookie: admin.cookie, stopWhen: ended })));
    const final = await saved(runId);
    expect(final.text).toBe(expectedFor(run.body));
    for (const seen of [await early, ...late.slice(0, 2)]) {
      const ofRun = seen.events.filter((e) => e.data.run_id === runId);
      expect(ofRun.filter((e) => e.data.type === 'token').map((e) => e.data.content).join('')).toBe(final.text);
    }
    for (const seen of [await early, ...late]) expect(increasing(seen.events.map((e) => e.id).filter((id) => !Number.isNaN(id)))).toBe(true);
    for (const lean of late.slice(2)) expect(lean.events.filter((e) => e.data.type === 'token' || e.data.type === 'progress')).toHaveLength(0);
    // The newcomers joined mid-run: their catch-up carried text made before they came.
    for (const seen of late.slice(0, 2)) expect(seen.events.find((e) => e.data.type === 'token')!.data.content.length).toBeGreaterThan(1);
  });

  it('cancels from one instance a run held by another: the run stops there, cancelled, its partial text kept', async () => {
    const { run } = await startRun(slowProviderId);
    const watched = await follow(runUrl(b, run.id), { cookie: admin.cookie, stopWhen: (e) => tokenCount(e) >= 3 });
    const viaB = new Client(b.url);
    viaB.cookie = admin.cookie;
    const res = await viaB.post(`/api/v1/runs/${run.id}/cancel/`);
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('cancelled');
    expect(res.body.text.startsWith(watched.text)).toBe(true);
    expect(res.body.text.length).toBeLessThan(expectedFor(run).length);
    expect(expectedFor(run).startsWith(res.body.text)).toBe(true);
    const replay = await follow(runUrl(b, run.id), { cookie: admin.cookie });
    expect(replay.text).toBe(res.body.text);
    expect(replay.events.at(-1)!.data).toMatchObject({ type: 'stage_update', status: 'cancelled' });
  });

  it('serves a studio in another process: live runs, and a resume after the Redis stream was trimmed away', { timeout: 120_000 }, async () => {
    const other = await spawnStudio(a.testDb, { env: { REDIS_URL, REDIS_PREFIX: prefix, INSTANCE_LEASE_S: '30' } });
    try {
      const client = new Client(other.base);
      expect((await client.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password })).status).toBe(200);
      const { run } = await startRun();
      const part = await follow(runUrl({ url: other.base }, run.id), { cookie: client.cookie, stopWhen: (e) => tokenCount(e) >= 5 });
      const rest = await follow(runUrl({ url: other.base }, run.id), { cookie: client.cookie, lastEventId: part.events.at(-1)!.id });
      const final = await saved(run.id);
      expect(part.text + rest.text).toBe(final.text);
      expect(rest.events.some((e) => e.data.type === 'reset')).toBe(false);

      // The stream is gone from Redis (trimmed, expired): the database answers, the client starts over.
      const { run: second } = await startRun();
      const early = await follow(runUrl(b, second.id), { cookie: admin.cookie, stopWhen: (e) => tokenCount(e) >= 5 });
      const done = await saved(second.id);
      expect(await redis.del(`${prefix}events:run:${second.id}`)).toBe(1);
      const resumed = await follow(runUrl({ url: other.base }, second.id), { cookie: client.cookie, lastEventId: early.events.at(-1)!.id });
      expect(resumed.events[0].data.type).toBe('reset');
      expect(resumed.text).toBe(done.text);
      expect(resumed.events.at(-1)!.data).toMatchObject({ type: 'done' });
      expect(increasing([early.events.at(-1)!.id, ...resumed.events.map((e) => e.id)])).toBe(true);
    } finally {
      await other.kill();
    }
  });
  it('signing out through one instance ends the streams that session has open on another', async () => {
    const { run } = await startRun(slowProviderId);
    const reader = new Client(b.url);
    expect((await reader.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password })).status).toBe(200);
    const other = new Client(b.url);
    other.cookie = admin.cookie;
    let tokens = 0;
    const watched = follow(runUrl(b, run.id), { cookie: reader.cookie, timeoutMs: 30_000, stopWhen: (e) => ((tokens = tokenCount(e)), false) });
    const alsoWatched = follow(runUrl(b, run.id), { cookie: admin.cookie, timeoutMs: 30_000, stopWhen: (e) => tokenCount(e) >= 40 });
    while (tokens < 3) await new Promise((r) => setTimeout(r, 20));
    const viaA = new Client(a.url);
    viaA.cookie = reader.cookie;
    expect((await viaA.post('/api/v1/auth/logout')).status).toBe(204);

    // The signed-out session's stream on B ends at once, mid-run; another session's goes on.
    const ended = await watched;
    expect(ended.ended).toBe('closed');
    expect(ended.events.filter(terminal)).toEqual([]);
    expect((await alsoWatched).ended).toBe('aborted');
    expect((await other.get(`/api/v1/runs/${run.id}/`)).body.status).toBe('running');
    await other.post(`/api/v1/runs/${run.id}/cancel/`);
    // B had the session in memory (it authorised the stream); told before the stream ended, it forgot it.
    expect((await reader.get('/api/v1/auth/me')).status).toBe(401);
  });

  it("removing a member through one instance ends that member's open streams of the project on another", async () => {
    const { projectId, run } = await startRun(slowProviderId);
    const email = `member-${randomUUID()}@example.com`;
    const member = await createUser(a, admin, email);
    expect((await admin.post(`/api/v1/projects/${projectId}/members/`, { email, role: 'viewer' })).status).toBe(202);
    let tokens = 0;
    const watched = follow(runUrl(b, run.id), { cookie: member.cookie, timeoutMs: 30_000, stopWhen: (e) => ((tokens = tokenCount(e)), false) });
    while (tokens < 3) await new Promise((r) => setTimeout(r, 20));
    expect((await admin.request('DELETE', `/api/v1/projects/${projectId}/members/${member.id}/`)).status).toBe(204);

    // B re-checks the member's access when A's message comes, long before the run would end.
    const ended = await watched;
    expect(ended.ended).toBe('closed');
    expect(ended.events.at(-1)!.data).toEqual({ type: 'access_revoked', project_id: projectId, reason: 'removed' });
    expect((await admin.get(`/api/v1/runs/${run.id}/`)).body.status).toBe('running');
    await admin.post(`/api/v1/runs/${run.id}/cancel/`);
  });

  it('a role changed through one instance holds on another, which remembered the old one', async () => {
    const user = await createUser(a, admin, 'promoted@example.com');
    const onB = new Client(b.url);
    onB.cookie = user.cookie;
    expect((await onB.get('/api/v1/users/')).status).toBe(403); // B now remembers the session, as a user's
    expect((await admin.patch(`/api/v1/users/${user.id}/`, { role: 'admin' })).status).toBe(200);
    // Well before B would read the session again by itself (KnownCredentials' time to live).
    await vi.waitFor(async () => expect((await onB.get('/api/v1/users/')).status).toBe(200), { timeout: CREDENTIAL_MEMORY_MS / 2, interval: 50 });
  });

  it('a run whose instance is killed mid-stream: the reader reconnects to another with Last-Event-ID and sees it end interrupted, nothing repeated, its text kept', { timeout: 120_000 }, async () => {
    const other = await spawnStudio(a.testDb, { env: { REDIS_URL, REDIS_PREFIX: prefix, INSTANCE_LEASE_S: '3' } });
    try {
      const client = new Client(other.base);
      expect((await client.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password })).status).toBe(200);
      const project = await client.post('/api/v1/projects/', { name: 'crash', original_topic: '深夜的地铁站里，一位老人在等最后一班车 🚇' });
      const started = await client.post(`/api/v1/projects/${project.body.id}/stages/rewrite/runs/`, { input: {}, provider_id: slowProviderId });
      expect(started.status).toBe(202);
      const run = started.body as { id: string; prompt: string; model: string };
      const before = await follow(runUrl({ url: other.base }, run.id), { cookie: client.cookie, stopWhen: (e) => tokenCount(e) >= 5 });
      await other.kill();

      // B serves the rest: what reached Redis before the kill, then the ending another instance wrote.
      const after = await follow(runUrl(b, run.id), { cookie: admin.cookie, lastEventId: before.events.at(-1)!.id });
      // A kill can beat the owner's last few ms of events to Redis: then the reader holds an id Redis never
      // had, and B starts it over (a reset, the whole text); otherwise it carries on after that id.
      const startedOver = after.events.some((e) => e.data.type === 'reset');
      if (startedOver) expect(after.events[0].data.type).toBe('reset');
      else expect(increasing([...before.events, ...after.events].map((e) => e.id))).toBe(true);
      expect(after.events.at(-1)!.data).toMatchObject({ type: 'stage_update', status: 'interrupted' });
      const seen = startedOver ? after.text : before.text + after.text;
      expect(seen.length).toBeGreaterThan(0);
      expect(expectedFor(run).startsWith(seen)).toBe(true);

      // Saved as interrupted with the text checkpointed before the crash (never more than was sent).
      const final = await saved(run.id);
      expect(final.status).toBe('interrupted');
      expect(seen.startsWith(final.text)).toBe(true);
      const stage = await admin.get(`/api/v1/projects/${project.body.id}/`);
      expect(stage.body.status).not.toBe('processing');
    } finally {
      await other.kill();
    }
  });
});

describe('Redis project streams written by two instances at once', () => {
  it('numbers the events of both writers in one strictly increasing sequence that every reader sees alike', async () => {
    const prefix = `test-${randomUUID()}:`;
    const log = pino({ level: 'silent' });
    const one = new RedisRunEvents({ redisUrl: REDIS_URL, redisPrefix: prefix }, log);
    const two = new RedisRunEvents({ redisUrl: REDIS_URL, redisPrefix: prefix }, log);
    try {
      const key = 'project:p1';
      await one.projectLog.attach(key, true);
      await two.projectLog.attach(key, true);
      const seen: [number[], string[]][] = [
        [[], []],
        [[], []],
      ];
      const total = 400;
      const all = new Promise<void>((resolve) => {
        [one, two].forEach((instance, i) =>
          instance.projectLog.subscribe(key, (e) => {
            seen[i][0].push(e.id);
            seen[i][1].push(e.json);
            if (seen[0][0].length === total && seen[1][0].length === total) resolve();
          }),
        );
      });
      // Interleaved across ticks, so both instances' batches land between each other's.
      for (let i = 0; i < total / 2; i++) {
        one.projectLog.append(key, JSON.stringify({ from: 'one', i }));
        two.projectLog.append(key, JSON.stringify({ from: 'two', i }));
        if (i % 10 === 0) await new Promise((r) => setTimeout(r, 3));
      }
      await all;
      expect(seen[0]).toEqual(seen[1]);
      expect(increasing(seen[0][0])).toBe(true);
      expect(new Set(seen[0][1]).size).toBe(total);
      // Each writer's own events keep their order.
      for (const from of ['one', 'two']) {
        const order = seen[0][1].map((j) => JSON.parse(j)).filter((e) => e.from === from).map((e) => e.i);
        expect(order).toEqual([...order].sort((x, y) => x - y));
      }
      // A late reader on either instance replays the same ids from any point.
      const mid = seen[0][0][total / 2];
      expect(one.projectLog.since(key, mid)!.map((e) => e.id)).toEqual(seen[0][0].slice(total / 2 + 1));
    } finally {
      await one.close();
      await two.close();
      const r = new Redis(REDIS_URL);
      const keys = await r.keys(`${prefix}*`);
      if (keys.length) await r.del(...keys);
      r.disconnect();
    }
  });
});

describe('a studio told to use a Redis that does not answer', () => {
  it('stops at start-up, naming the Redis (without its password) and what to do, instead of waiting', { timeout: 60_000 }, async () => {
    // A port that was free a moment ago: nothing answers there.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise((resolve) => server.close(resolve));
    const testDb = await createTestDatabase();
    try {
      const started = await startStudioProcess(testDb, { env: { REDIS_URL: `redis://:pa55word@127.0.0.1:${port}` } });
      expect(started.studio).toBeNull();
      expect(started.exited!.code).toBe(1);
      expect(started.exited!.stderr).toContain(`Redis at redis://:***@127.0.0.1:${port}`);
      expect(started.exited!.stderr).toContain('unset REDIS_URL');
      expect(started.exited!.stderr).not.toContain('pa55word');
    } finally {
      await testDb.destroy();
    }
  });
});
