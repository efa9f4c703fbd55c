import { startFakeLlm, type FakeLlmServer } from '@ai-story/fake-llm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, Client, createTestDatabase, leasesExpired, setupAdmin, spawnStudio, startStudio, startStudioProcess, TEST_DB, type TestDatabase } from './helpers.ts';
import { follow, terminal } from './sse-client.ts';
import { behindProxy } from './tcp-proxy.ts';

// Short, so the expiry test does not wait long; a live studio renews it every third of it.
const LEASE_S = '20';

describe.skipIf(TEST_DB !== 'postgres')('one studio per PostgreSQL database (PostgreSQL only: the embedded database is guarded by its folder lock)', () => {
  let fake: FakeLlmServer;
  beforeAll(async () => {
    fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await fake?.close();
  });

  /** A signed-in admin on the studio at `base`, with a slow rewrite run started. */
  async function startRun(base: string, model: string) {
    const admin = new Client(base);
    expect((await admin.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password })).status).toBe(200);
    const provider = await admin.post('/api/v1/models/providers/', { name: 'slow', api_url: fake.url, model_name: model });
    const project = await admin.post('/api/v1/projects/', { name: 'lease', original_topic: '守夜人与一盏不灭的灯' });
    const run = await admin.post(`/api/v1/projects/${project.body.id}/stages/rewrite/runs/`, { input: {}, provider_id: provider.body.id });
    expect(run.status).toBe(202);
    return { admin, runId: run.body.id as string };
  }

  /** The run and lease rows as the database has them, read beside the studios. */
  async function inDatabase<T>(testDb: TestDatabase, query: (sql: postgres.Sql) => Promise<T>): Promise<T> {
    const sql = postgres(testDb.location.databaseUrl!, { max: 1, onnotice: () => {} });
    try {
      return await query(sql);
    } finally {
      await sql.end();
    }
  }
  const runStatus = (testDb: TestDatabase, runId: string) =>
    inDatabase(testDb, async (sql) => (await sql`select status from stage_runs where id = ${runId}`)[0].status as string);

  it('stops a second studio with a clear message before it touches the first one\'s run, which goes on to complete', { timeout: 240_000 }, async () => {
    const testDb = await createTestDatabase();
    const a = await spawnStudio(testDb, { env: { INSTANCE_LEASE_S: LEASE_S } });
    try {
      const { admin, runId } = await startRun(a.base, 'fake-model?ttft=10&tps=40&tokens=2000');
      const second = await startStudioProcess(testDb);
      expect(second.studio).toBeNull();
      expect(second.exited!.code).not.toBe(0);
      expect(second.exited!.stderr).toContain(`Another AI Story studio (pid ${a.child.pid} `);
      expect(second.exited!.stderr).toMatch(/is using this database/);

      expect(await runStatus(testDb, runId)).toBe('running');
      const seen = await follow(`${a.base}/api/v1/runs/${runId}/events`, { cookie: admin.cookie, timeoutMs: 120_000 });
      expect(seen.events.filter(terminal).map((e) => e.data.type)).toEqual(['done']);
      expect((await admin.get(`/api/v1/runs/${runId}/`)).body.status).toBe('completed');
    } finally {
      await a.kill();
      await testDb.destroy();
    }
  });

  it('recovers a killed studio\'s run only once its lease has expired', { timeout: 240_000 }, async () => {
    const testDb = await createTestDatabase();
    const a = await spawnStudio(testDb, { env: { INSTANCE_LEASE_S: LEASE_S } });
    let b: Awaited<ReturnType<typeof spawnStudio>> | undefined;
    try {
      const { admin, runId } = await startRun(a.base, 'fake-model?ttft=10&tps=30&tokens=3000');
      // Some text first, and time for a checkpoint (at most one a second) to reach the database.
      await follow(`${a.base}/api/v1/runs/${runId}/events`, { cookie: admin.cookie, stopWhen: () => false, timeoutMs: 2_600 }).catch(() => null);
      await a.kill();

      // Within the lease the dead studio still holds the database: a new one may not take its run.
      // Within the lease the dead studio still holds the database: a new one may not take its run. (Built
      // in this process: a new Node process can take longer than the lease to start on a busy machine.)
      await expect(startStudio({}, testDb)).rejects.toThrow(`Another AI Story studio (pid ${a.child.pid} `);
      expect(await runStatus(testDb, runId)).toBe('running');

      await leasesExpired(testDb);
      expect(await runStatus(testDb, runId)).toBe('running'); // expiry alone changes nothing; the next start does

      b = await spawnStudio(testDb, { env: { INSTANCE_LEASE_S: LEASE_S } });
      const c = new Client(b.base);
      await c.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password });
      const after = (await c.get(`/api/v1/runs/${runId}/`)).body;
      expect(after.status).toBe('interrupted');
      expect(after.text.length).toBeGreaterThan(0);
      // The new studio holds the only lease, and the killed one's row is gone.
      const leases = await inDatabase(testDb, (sql) => sql`select pid from instances`);
      expect(leases.map((l) => l.pid)).toEqual([b.child.pid]);
    } finally {
      await a.kill();
      await b?.kill();
      await testDb.destroy();
    }
  });

  it('a studio cut off past its lease, whose runs another studio recovered, stops them when it is back instead of running them twice', { timeout: 180_000 }, async () => {
    const testDb = await createTestDatabase();
    const { proxy, database: viaProxy } = await behindProxy(testDb);
    const a = await startStudio({ instanceLeaseMs: 3_000 }, viaProxy);
    let b: Awaited<ReturnType<typeof startStudio>> | undefined;
    try {
      const admin = await setupAdmin(a);
      const provider = await admin.post('/api/v1/models/providers/', { name: 'slow', api_url: fake.url, model_name: 'fake-model?ttft=10&tps=20&tokens=3000' });
      const project = await admin.post('/api/v1/projects/', { name: 'takeover', original_topic: '两个守门人' });
      const runId = (await admin.post(`/api/v1/projects/${project.body.id}/stages/rewrite/runs/`, { input: {}, provider_id: provider.body.id })).body.id;
      const url = `${a.url}/api/v1/runs/${runId}/events`;
      const following = follow(url, { cookie: admin.cookie, timeoutMs: 150_000 });
      await follow(url, { cookie: admin.cookie, stopWhen: (events) => events.some((e) => e.data.type === 'token') });

      await proxy.cut();
      await leasesExpired(testDb);
      b = await startStudio({}, testDb); // takes the expired lease over and recovers the run
      expect(await runStatus(testDb, runId)).toBe('interrupted');
      await proxy.restore();

      // Back online, the first studio finds its lease gone and ends the run for its clients, writing nothing over it.
      const seen = await following;
      expect(seen.events.filter(terminal).map((e) => e.data)).toEqual([expect.objectContaining({ type: 'stage_update', status: 'interrupted' })]);
      expect(a.app.services.runs.activeCount).toBe(0);
      const row = await inDatabase(testDb, async (sql) => (await sql`select status, finished_at from stage_runs where id = ${runId}`)[0]);
      expect(row.status).toBe('interrupted');
      const leases = await inDatabase(testDb, (sql) => sql`select pid from instances`);
      expect(leases.length).toBe(1); // only the new studio's
    } finally {
      await a.close({ keepDatabase: true });
      await b?.close({ keepDatabase: true });
      await proxy.close();
      await testDb.destroy();
    }
  });
});
