import { startFakeLlm, type FakeLlmServer } from '@ai-story/fake-llm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, Client, createTestDatabase, expectedRewrite, setupAdmin, spawnStudio, startStudio, TEST_DB } from './helpers.ts';
import { follow, terminal, type ReceivedEvent } from './sse-client.ts';
import { behindProxy } from './tcp-proxy.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const expectedFor = expectedRewrite;

describe(`faults (${TEST_DB})`, () => {
  let fake: FakeLlmServer;
  beforeAll(async () => {
    fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await fake?.close();
  });

  it.skipIf(TEST_DB !== 'postgres')(
    'a run whose database is unreachable for 5 s ends completed with its whole text once it is back, and the studio recovers by itself (PostgreSQL only: the embedded database cannot be cut off)',
    { timeout: 180_000 },
    async () => {
      const testDb = await createTestDatabase();
      const { proxy, database: proxied } = await behindProxy(testDb);
      const studio = await startStudio({}, proxied);
      try {
        const admin = await setupAdmin(studio);
        const provider = await admin.post('/api/v1/models/providers/', { name: 'steady', api_url: fake.url, model_name: 'fake-model?ttft=10&tps=60&tokens=240' });
        const project = await admin.post('/api/v1/projects/', { name: 'outage', original_topic: '停电的夜里，整栋楼的人第一次坐在一起' });
        const run = (await admin.post(`/api/v1/projects/${project.body.id}/stages/rewrite/runs/`, { input: {}, provider_id: provider.body.id })).body;
        const url = `${studio.url}/api/v1/runs/${run.id}/events`;
        const whole = follow(url, { cookie: admin.cookie, timeoutMs: 120_000 });
        // Cut once the run is streaming: its checkpoints, its end and the lease's heartbeat all fail.
        await follow(url, { cookie: admin.cookie, stopWhen: (events) => events.filter((e) => e.data.type === 'token').length >= 5 });
        await proxy.cut();
        await sleep(5_000);
        await proxy.restore();

        const seen = await whole;
        const expected = expectedFor(run);
        expect(seen.events.filter(terminal).map((e) => e.data.type)).toEqual(['done']);
        expect(seen.text).toBe(expected);
        const saved = (await admin.get(`/api/v1/runs/${run.id}/`)).body;
        expect(saved).toMatchObject({ status: 'completed', text: expected });

        // Recovered by itself: the same process answers, runs again, and still holds its lease.
        expect((await admin.get('/api/v1/auth/me')).status).toBe(200);
        const again = (await admin.post(`/api/v1/projects/${project.body.id}/stages/rewrite/runs/`, { input: {}, provider_id: provider.body.id })).body;
        const second = await follow(`${studio.url}/api/v1/runs/${again.id}/events`, { cookie: admin.cookie, timeoutMs: 120_000 });
        expect(second.events.at(-1)!.data.type).toBe('done');
        const sql = postgres(testDb.location.databaseUrl!, { max: 1, onnotice: () => {} });
        try {
          const leases = await sql`select pid, expires_at > now() as live from instances`;
          expect(leases).toEqual([{ pid: process.pid, live: true }]);
        } finally {
          await sql.end();
        }
      } finally {
        await studio.close({ keepDatabase: true });
        await proxy.close();
        await testDb.destroy();
      }
    },
  );

  it('SIGTERM during 100 live streams: each client gets its terminal event or resumes to it, and no run is left running', { timeout: 420_000 }, async () => {
    const RUNS = 25;
    const FOLLOWERS_PER_RUN = 4;
    const testDb = await createTestDatabase();
    let studio = await spawnStudio(testDb);
    let restarted: Awaited<ReturnType<typeof spawnStudio>> | undefined;
    try {
      const admin = new Client(studio.base);
      expect((await admin.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password })).status).toBe(200);
      const provider = await admin.post('/api/v1/models/providers/', { name: 'slow', api_url: fake.url, model_name: 'fake-model?ttft=10&tps=20&tokens=5000' });
      const runIds: string[] = [];
      for (let i = 0; i < RUNS; i++) {
        const project = await admin.post('/api/v1/projects/', { name: `stream ${i}`, original_topic: `第${i}个故事：雨夜里的电话亭` });
        const run = await admin.post(`/api/v1/projects/${project.body.id}/stages/rewrite/runs/`, { input: {}, provider_id: provider.body.id });
        expect(run.status).toBe(202);
        runIds.push(run.body.id);
      }

      // 100 clients following live; each keeps what it received even if its connection is cut. The
      // studio is stopped once every client has had a token: a run stopped before its first one has no
      // text to keep, and the test would say nothing of it (on a busy machine that happened).
      let streaming = 0;
      const clients = runIds.flatMap((runId) =>
        Array.from({ length: FOLLOWERS_PER_RUN }, () => {
          const client = { runId, events: [] as ReceivedEvent[], cut: false, streaming: false };
          const done = follow(`${studio.base}/api/v1/runs/${runId}/events`, {
            cookie: admin.cookie,
            timeoutMs: 300_000,
            stopWhen: (events) => {
              if (!client.streaming && events.some((e) => e.data.type === 'token')) {
                client.streaming = true;
                streaming++;
              }
              client.events = events;
              return false;
            },
          }).catch(() => {
            client.cut = true;
          });
          return Object.assign(client, { done });
        }),
      );
      // Generous: on a busy machine the embedded database answers 100 connections slowly.
      for (const until = Date.now() + 180_000; streaming < clients.length; await sleep(100)) {
        if (Date.now() > until) throw new Error(`only ${streaming} of ${clients.length} streams had a token`);
      }

      // A project's stream has no run to end it: the studio ends it itself, or it would never finish closing.
      let projectEvents = 0;
      const projectFollower = follow(`${studio.base}/api/v1/projects/${(await admin.get('/api/v1/projects/')).body.results[0].id}/events`, {
        cookie: admin.cookie,
        timeoutMs: 300_000,
        stopWhen: (events) => ((projectEvents = events.length), false),
      }).catch(() => null);
      for (const until = Date.now() + 60_000; projectEvents === 0; await sleep(100)) {
        if (Date.now() > until) throw new Error('the project stream sent nothing');
      }

      studio.child.kill('SIGTERM');
      expect(await studio.exit).toBe(0);
      await Promise.all(clients.map((c) => c.done));
      await projectFollower;

      restarted = await spawnStudio(testDb);
      const after = new Client(restarted.base);
      await after.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password });
      for (const client of clients) {
        if (client.events.some(terminal)) continue;
        // Cut before its end arrived: resume where it stopped, as the web app's stream client does.
        const resumed = await follow(`${restarted.base}/api/v1/runs/${client.runId}/events`, { cookie: after.cookie, lastEventId: client.events.at(-1)!.id });
        expect(resumed.status).toBe(200);
        client.events = [...client.events, ...resumed.events];
      }
      for (const client of clients) {
        const ends = client.events.filter(terminal);
        expect(ends.map((e) => e.data)).toEqual([expect.objectContaining({ type: 'stage_update', status: 'interrupted' })]);
      }
      for (const runId of runIds) {
        const run = (await after.get(`/api/v1/runs/${runId}/`)).body;
        expect(run.status).toBe('interrupted');
        expect(run.text.length).toBeGreaterThan(0);
      }
    } finally {
      await studio.kill();
      await restarted?.kill();
      await testDb.destroy();
    }
  });
});
