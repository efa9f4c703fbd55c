import { randomUUID } from 'node:crypto';
import { startFakeLlm } from '@ai-story/fake-llm';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, endedRun, expectedRewrite, setupAdmin, spawnStudio, startStudio, startStudioProcess, TEST_DB, type TestStudio } from './helpers.ts';
import { follow, type ReceivedEvent } from './sse-client.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const WORKER = 'apps/server/src/worker.ts';
const tokenCount = (events: ReceivedEvent[]) => events.filter((e) => e.data.type === 'token').length;
type Fake = Awaited<ReturnType<typeof startFakeLlm>>;
type WorkerProcess = Awaited<ReturnType<typeof spawnStudio>>;

describe.skipIf(TEST_DB !== 'postgres')('runs in worker processes (RUNS_IN=workers): the API instance queues, a worker executes', () => {
  let fake: Fake;
  let api: TestStudio;
  let admin: Client;
  let steady: string;
  let slow: string;
  let worker: WorkerProcess | undefined;
  const prefix = `test-${randomUUID()}:`;
  const redis = new Redis(REDIS_URL, { lazyConnect: true });

  // A 3 s lease for the worker (it is killed here); the API instance looks for dead owners every 5 s.
  const startWorker = () => spawnStudio(api.testDb, { entry: WORKER, env: { REDIS_URL, REDIS_PREFIX: prefix, RUNS_IN: 'workers', INSTANCE_LEASE_S: '3' } });
  const runEvents = (runId: string) => `${api.url}/api/v1/runs/${runId}/events`;
  const startRun = async (provider: string) => {
    const project = await admin.post('/api/v1/projects/', { name: 'workers', original_topic: '深夜的地铁站里，一位老人在等最后一班车 🚇' });
    const run = await admin.post(`/api/v1/projects/${project.body.id}/stages/rewrite/runs/`, { input: {}, provider_id: provider });
    expect(run.status, JSON.stringify(run.body)).toBe(202);
    return { projectId: project.body.id as string, run: run.body as { id: string; status: string; prompt: string; model: string } };
  };

  beforeAll(async () => {
    fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    api = await startStudio({ redisUrl: REDIS_URL, redisPrefix: prefix, runsIn: 'workers', instanceLeaseMs: 10_000, heartbeatMs: 200 });
    admin = await setupAdmin(api);
    const provider = async (name: string, model: string) => (await admin.post('/api/v1/models/providers/', { name, api_url: fake.url, model_name: model })).body.id as string;
    steady = await provider('steady', 'fake-model?ttft=20&tps=150&tokens=300');
    slow = await provider('slow', 'fake-model?ttft=20&tps=40&tokens=2000');
    await redis.connect();
    worker = await startWorker();
  }, 120_000);
  afterAll(async () => {
    await worker?.kill();
    await api?.close();
    await fake?.close();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it('a worker started without RUNS_IN=workers stops at once, saying what it needs', async () => {
    const started = await startStudioProcess(api.testDb, { entry: WORKER, env: { REDIS_URL, REDIS_PREFIX: prefix } });
    expect(started.studio).toBeNull();
    expect(started.exited!.code).toBe(1);
    expect(started.exited!.stderr).toContain('Invalid RUNS_IN: a worker needs RUNS_IN=workers');
  });

  it('a run started through the API instance is executed by the worker: live tokens through the API, the exact text saved', async () => {
    const { run } = await startRun(steady);
    expect(run.status).toBe('queued');
    const seen = await follow(runEvents(run.id), { cookie: admin.cookie, timeoutMs: 60_000 });
    // The API instance never held it: it executed in the worker process.
    expect(api.app.services.runs.activeCount).toBe(0);
    expect(seen.events.map((e) => e.data.type)).toContain('token');
    expect(seen.events.at(-1)!.data.type).toBe('done');
    const saved = await endedRun(admin, run.id);
    expect(saved.status).toBe('completed');
    expect(seen.text).toBe(expectedRewrite(run));
    expect(saved.text).toBe(seen.text);
  });

  it('cancel through the API instance stops the run in the worker that holds it, its partial text kept', async () => {
    const { run } = await startRun(slow);
    const part = await follow(runEvents(run.id), { cookie: admin.cookie, stopWhen: (e) => tokenCount(e) >= 3, timeoutMs: 60_000 });
    const res = await admin.post(`/api/v1/runs/${run.id}/cancel/`);
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('cancelled');
    expect(res.body.text.startsWith(part.text)).toBe(true);
    expect(expectedRewrite(run).startsWith(res.body.text)).toBe(true);
    expect(res.body.text.length).toBeLessThan(expectedRewrite(run).length);
  });

  it('Run all: the worker starts each next stage as the one before it ends, to the end of the pipeline', { timeout: 120_000 }, async () => {
    const project = (await admin.post('/api/v1/projects/', { name: 'workers pipeline', original_topic: '老街的修表匠。他修好了最后一只表。孩子们围在门口。夕阳照在玻璃柜上。' })).body;
    const route = { provider_ids: [steady], strategy: 'round_robin' };
    await admin.put(`/api/v1/projects/${project.id}/model-config/`, { rewrite: route, storyboard: route, camera: route });
    // The media stages are left out (skipped): the writing stages show the hand-over between processes.
    for (const stage of ['image', 'narration', 'video', 'export']) expect((await admin.post(`/api/v1/projects/${project.id}/stages/${stage}/skip/`)).status).toBe(200);
    expect((await admin.post(`/api/v1/projects/${project.id}/execute/`)).status).toBe(202);
    const until = Date.now() + 90_000;
    let p = (await admin.get(`/api/v1/projects/${project.id}/`)).body;
    while (!(p.pipeline_state === 'idle' && p.status !== 'processing') && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 200));
      p = (await admin.get(`/api/v1/projects/${project.id}/`)).body;
    }
    const statuses = Object.fromEntries(p.stages.map((s: { stage_type: string; status: string }) => [s.stage_type, s.status]));
    expect(statuses).toMatchObject({ rewrite: 'completed', storyboard: 'completed', camera: 'completed', image: 'skipped', export: 'skipped' });
    expect(api.app.services.runs.activeCount).toBe(0);
  });

  it('kill -9 of the worker mid-run: the run ends interrupted for its followers, never stays running; a queued run can be cancelled; a new worker takes the next run', { timeout: 120_000 }, async () => {
    const { run, projectId } = await startRun(slow);
    const before = await follow(runEvents(run.id), { cookie: admin.cookie, stopWhen: (e) => tokenCount(e) >= 3, timeoutMs: 60_000 });
    await worker!.kill();
    worker = undefined;
    const after = await follow(runEvents(run.id), { cookie: admin.cookie, lastEventId: before.events.at(-1)!.id, timeoutMs: 60_000 });
    expect(after.events.at(-1)!.data).toMatchObject({ type: 'stage_update', status: 'interrupted' });
    const ended = await endedRun(admin, run.id);
    expect(ended.status).toBe('interrupted');
    expect(expectedRewrite(run).startsWith(ended.text)).toBe(true);
    expect((await admin.get(`/api/v1/projects/${projectId}/`)).body.status).not.toBe('processing');

    // No worker: a run waits in the queue, and a cancel ends it there.
    const { run: waiting } = await startRun(steady);
    await new Promise((r) => setTimeout(r, 500));
    expect((await admin.get(`/api/v1/runs/${waiting.id}/`)).body.status).toBe('queued');
    const cancelled = await admin.post(`/api/v1/runs/${waiting.id}/cancel/`);
    expect(cancelled.body.status).toBe('cancelled');
    const replay = await follow(runEvents(waiting.id), { cookie: admin.cookie });
    expect(replay.events.at(-1)!.data).toMatchObject({ type: 'stage_update', status: 'cancelled' });

    // A new worker skips the cancelled job and executes the next run.
    worker = await startWorker();
    const { run: next } = await startRun(steady);
    const done = await follow(runEvents(next.id), { cookie: admin.cookie, timeoutMs: 60_000 });
    expect(done.text).toBe(expectedRewrite(next));
    expect((await endedRun(admin, waiting.id)).status).toBe('cancelled');
  });
});
