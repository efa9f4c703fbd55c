import { randomUUID } from 'node:crypto';
import { startFakeLlm } from '@ai-story/fake-llm';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, Client, endedRun, setupAdmin, startStudio, TEST_DB, type TestStudio } from './helpers.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * Scale-out mode: two studios on one PostgreSQL database and one Redis. A provider's limits are the
 * provider's, not an instance's: a limit of N per minute lets N calls through the two together.
 * (Two studios cannot share an embedded database, so this runs on PostgreSQL only.)
 */
describe.skipIf(TEST_DB !== 'postgres')('two studios share provider limits through Redis', () => {
  const prefix = `test:shared-limits:${randomUUID()}:`;
  let fake: Awaited<ReturnType<typeof startFakeLlm>>;
  let a: TestStudio;
  let b: TestStudio;
  let onA: Client;
  let onB: Client;

  beforeAll(async () => {
    fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    a = await startStudio({ redisUrl: REDIS_URL, redisPrefix: prefix });
    b = await startStudio({ redisUrl: REDIS_URL, redisPrefix: prefix }, a.testDb);
    onA = await setupAdmin(a);
    onB = new Client(b.url);
    expect((await onB.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password })).status).toBe(200);
  });
  afterAll(async () => {
    await b?.close({ keepDatabase: true });
    await a?.close();
    await fake?.close();
    const raw = new Redis(REDIS_URL);
    const left = await raw.keys(`${prefix}*`);
    if (left.length) await raw.del(...left);
    await raw.quit();
  });

  const limitedProvider = async (rpm: number) =>
    (await onA.post('/api/v1/models/providers/', { name: `limited ${rpm}/min`, api_url: fake.url, model_name: 'fake-model?ttft=1&tps=2000&tokens=10', rate_limit_rpm: rpm })).body.id as string;
  const projectOn = async (providerId: string) => {
    const id = (await onA.post('/api/v1/projects/', { name: 'shared', original_topic: '灯塔守护人在暴风雨的夜里救起一头鲸鱼。' })).body.id as string;
    expect((await onA.put(`/api/v1/projects/${id}/model-config/`, { rewrite: { provider_ids: [providerId], strategy: 'round_robin' } })).status).toBe(200);
    return id;
  };
  const start = (client: Client, projectId: string) => client.post(`/api/v1/projects/${projectId}/stages/rewrite/runs/`, { input: {} });
  const ended = (client: Client, runId: string) => endedRun(client, runId);

  it('a limit of 2 per minute lets one run through each studio, then both refuse with 503 and Retry-After', async () => {
    const provider = await limitedProvider(2);
    const before = fake.handler.stats.requests;
    const first = await start(onA, await projectOn(provider));
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    expect((await ended(onA, first.body.id)).status).toBe('completed');
    const second = await start(onB, await projectOn(provider));
    expect(second.status, JSON.stringify(second.body)).toBe(202);
    expect((await ended(onB, second.body.id)).status).toBe('completed');
    for (const client of [onA, onB]) {
      const refused = await start(client, await projectOn(provider));
      expect(refused.status).toBe(503);
      expect(refused.body.error.message).toMatch(/over its limit of 2 requests per minute/);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    expect(fake.handler.stats.requests - before).toBe(2);
  });

  it('runs started at once on both studios never call the provider more than its limit', async () => {
    const provider = await limitedProvider(3);
    const projects = await Promise.all(Array.from({ length: 8 }, () => projectOn(provider)));
    const before = fake.handler.stats.requests;
    const starts = await Promise.all(projects.map((id, i) => start(i % 2 ? onB : onA, id)));
    expect(starts.every((s) => s.status === 202 || s.status === 503)).toBe(true);
    const runs = await Promise.all(starts.filter((s) => s.status === 202).map((s) => ended(onA, s.body.id)));
    expect(runs.filter((r) => r.status === 'completed')).toHaveLength(3);
    // A start that passed the check but lost the race for the last slot ends failed, saying why.
    for (const r of runs.filter((r) => r.status !== 'completed')) expect(r).toMatchObject({ status: 'failed', error: { code: 'rate_limited' } });
    expect(fake.handler.stats.requests - before).toBe(3);
  });
});
