import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { startFakeLlm } from '@ai-story/fake-llm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, createUser, setupAdmin, startStudio, TEST_DB, type TestStudio } from './helpers.ts';
import { follow } from './sse-client.ts';

const SECRET_KEY = 'sk-proj-SuperSecretKeyValue-7f3a9c1e5b';

function filesContaining(dir: string, needle: Buffer): string[] {
  const hits: string[] = [];
  for (const entry of readdirSync(dir)) {
    const p = path.join(dir, entry);
    if (statSync(p).isDirectory()) hits.push(...filesContaining(p, needle));
    else if (readFileSync(p).includes(needle)) hits.push(p);
  }
  return hits;
}

describe(`model providers (${TEST_DB})`, () => {
  let fake: Awaited<ReturnType<typeof startFakeLlm>>;
  let studio: TestStudio;
  let admin: Client;
  let user: Client;
  const logLines: string[] = [];

  beforeAll(async () => {
    fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    const logs = new PassThrough();
    logs.on('data', (chunk) => logLines.push(chunk.toString()));
    studio = await startStudio({}, undefined, logs);
    admin = await setupAdmin(studio);
    user = await createUser(studio, admin, 'user@example.com');
  });
  afterAll(async () => {
    await studio?.close();
    await fake?.close();
  });

  it('offers the offline demo model, labelled simulated, when no provider is configured', async () => {
    const list = (await admin.get('/api/v1/models/providers/')).body;
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ name: '离线演示模型 / Offline demo model', is_simulated: true, is_active: true });
    const reduced = (await user.get('/api/v1/models/providers/')).body;
    expect(reduced).toEqual([{ id: list[0].id, name: '离线演示模型 / Offline demo model', provider_type: 'llm', model_name: list[0].model_name, is_simulated: true }]);
  });

  it('runs a rewrite on the offline demo model with no key and no network, marked simulated', async () => {
    const project = (await user.post('/api/v1/projects/', { name: 'demo', original_topic: '海边的旧灯塔' })).body;
    const run = await user.post(`/api/v1/projects/${project.id}/stages/rewrite/runs/`, { input: {} });
    expect(run.status).toBe(202);
    expect(run.body.is_simulated).toBe(true);
    const seen = await follow(`${studio.url}/api/v1/runs/${run.body.id}/events`, { cookie: user.cookie, timeoutMs: 60_000 });
    expect(seen.events.at(-1)!.data.type).toBe('done');
    expect(seen.text.length).toBeGreaterThan(20);
  });

  let providerId: string;
  it('creates a provider with its key encrypted at rest, answering only a hint', async () => {
    const res = await admin.post('/api/v1/models/providers/', {
      name: 'Fake upstream',
      api_url: fake.url,
      api_key: SECRET_KEY,
      model_name: 'fake-model?ttft=5&tps=500&tokens=30',
      price_input_per_m: 1,
      price_output_per_m: 2,
    });
    expect(res.status).toBe(201);
    providerId = res.body.id;
    expect(res.body.api_key_hint).toBe('sk-…1e5b');
    expect(JSON.stringify(res.body)).not.toContain(SECRET_KEY);
    expect(res.body).not.toHaveProperty('api_key');

    const { sql } = await import('drizzle-orm');
    const rows: any = await studio.database.db.execute(sql`select api_key_enc from model_providers where id = ${providerId}`);
    const stored = (rows.rows ?? rows)[0].api_key_enc as string;
    expect(stored.startsWith('v1:')).toBe(true);
    expect(stored).not.toContain('SuperSecret');
    if (TEST_DB === 'pglite') {
      await studio.database.db.execute(sql`checkpoint`);
      expect(filesContaining(studio.config.dataDir, Buffer.from('SuperSecretKeyValue'))).toEqual([]);
    }
  });

  it('keeps the old key on a PATCH without one, and replaces it when given', async () => {
    const renamed = await admin.patch(`/api/v1/models/providers/${providerId}/`, { name: 'Renamed', api_key: '' });
    expect(renamed.body.name).toBe('Renamed');
    expect(renamed.body.api_key_hint).toBe('sk-…1e5b');
    expect(renamed.body).toMatchObject({ price_input_per_m: 1, price_output_per_m: 2, model_name: 'fake-model?ttft=5&tps=500&tokens=30' }); // a PATCH changes only what it names
    const test = await admin.post(`/api/v1/models/providers/${providerId}/test/`);
    expect(test.body.ok).toBe(true);
  });

  it('tests connections and says what is wrong in words a person can act on', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ model_name: 'fake-model?quirk=bad_key' }, /key/i],
      [{ model_name: 'fake-model?quirk=model_not_found' }, /model/i],
      [{ api_url: fake.url.replace(/\/v1$/, '/nothing-here') }, /url|path|404/i],
      [{ api_url: 'http://127.0.0.1:9/v1' }, /reach|refused|unreachable/i],
      [{ model_name: 'fake-model?quirk=not_openai' }, /openai/i],
    ];
    for (const [patch, message] of cases) {
      const created = await admin.post('/api/v1/models/providers/', { name: 'probe', api_url: fake.url, api_key: SECRET_KEY, model_name: 'fake-model', timeout_s: 2, ...patch });
      const res = await admin.post(`/api/v1/models/providers/${created.body.id}/test/`);
      expect(res.status).toBe(200);
      expect(res.body.ok, JSON.stringify(res.body)).toBe(false);
      expect(res.body.message).toMatch(message);
      expect(res.body.message).not.toContain(SECRET_KEY);
      expect(typeof res.body.latency_ms).toBe('number');
      await admin.delete(`/api/v1/models/providers/${created.body.id}/`);
    }
    const ok = await admin.post(`/api/v1/models/providers/${providerId}/test/`);
    expect(ok.body).toMatchObject({ ok: true });
    const listed = (await admin.get(`/api/v1/models/providers/${providerId}/`)).body;
    expect(listed.last_test.ok).toBe(true);
  });

  it('refuses every write from a non-admin with 403 and shows them no URL or key', async () => {
    const writes = [
      user.post('/api/v1/models/providers/', { name: 'x', api_url: fake.url, model_name: 'm' }),
      user.patch(`/api/v1/models/providers/${providerId}/`, { name: 'x' }),
      user.delete(`/api/v1/models/providers/${providerId}/`),
      user.post(`/api/v1/models/providers/${providerId}/test/`),
      user.get(`/api/v1/models/providers/${providerId}/usage/`),
      user.put('/api/v1/models/routing/', { rewrite: { provider_ids: [providerId], strategy: 'random' } }),
    ];
    for (const res of await Promise.all(writes)) expect(res.status).toBe(403);
    const one = (await user.get(`/api/v1/models/providers/${providerId}/`)).body;
    expect(one).not.toHaveProperty('api_url');
    expect(one).not.toHaveProperty('api_key_hint');
  });

  it.each([
    [{ name: '', api_url: 'http://x/v1', model_name: 'm' }, 'name'],
    [{ name: 'n', api_url: 'not a url', model_name: 'm' }, 'api_url'],
    [{ name: 'n', api_url: 'ftp://x/v1', model_name: 'm' }, 'api_url'],
    [{ name: 'n', api_url: 'http://x/v1', model_name: '' }, 'model_name'],
    [{ name: 'n', api_url: 'http://x/v1', model_name: 'm', temperature: 5 }, 'temperature'],
    [{ name: 'n', api_url: 'http://x/v1', model_name: 'm', provider_type: 'nope' }, 'provider_type'],
  ])('rejects a bad provider %j naming %s', async (body, field) => {
    const before = (await admin.get('/api/v1/models/providers/')).body.length;
    const res = await admin.post('/api/v1/models/providers/', body);
    expect(res.status).toBe(400);
    expect(Object.keys(res.body.error.details.fields)).toContain(field);
    expect((await admin.get('/api/v1/models/providers/')).body.length).toBe(before);
  });

  it('accounts usage per call: tokens, time to first token, cost, per day', async () => {
    const project = (await admin.post('/api/v1/projects/', { name: 'usage', original_topic: '月光下的钢琴' })).body;
    const run = await admin.post(`/api/v1/projects/${project.id}/stages/rewrite/runs/`, { input: {}, provider_id: providerId });
    const seen = await follow(`${studio.url}/api/v1/runs/${run.body.id}/events`, { cookie: admin.cookie });
    const done = seen.events.at(-1)!.data;
    expect(done.type).toBe('done');
    expect(done.run.usage.completion_tokens).toBeGreaterThan(0);
    expect(done.run.usage.prompt_tokens).toBeGreaterThan(0);
    const usage = (await admin.get(`/api/v1/models/providers/${providerId}/usage/`)).body;
    expect(usage.totals.calls).toBeGreaterThanOrEqual(1);
    expect(usage.totals.completion_tokens).toBe(done.run.usage.completion_tokens);
    expect(usage.totals.cost, JSON.stringify({ usage, runUsage: done.run.usage })).toBeCloseTo((done.run.usage.prompt_tokens * 1 + done.run.usage.completion_tokens * 2) / 1e6, 9);
    expect(usage.days).toHaveLength(1);
    expect(usage.days[0].day).toBe(new Date().toISOString().slice(0, 10));
  });

  it('never writes a key to a log line', () => {
    const all = logLines.join('');
    expect(all.length).toBeGreaterThan(0);
    expect(all).not.toContain(SECRET_KEY);
    expect(all).not.toContain('SuperSecretKeyValue');
  });

  it('removes the offline demo for good once an admin deletes it', async () => {
    const demo = (await admin.get('/api/v1/models/providers/')).body.find((p: any) => p.is_simulated);
    expect((await admin.delete(`/api/v1/models/providers/${demo.id}/`)).status).toBe(204);
    // With no active provider left, only the "deleted" mark keeps the demo from coming back.
    for (const p of (await admin.get('/api/v1/models/providers/')).body) await admin.patch(`/api/v1/models/providers/${p.id}/`, { is_active: false });
    await studio.close({ keepDatabase: true });
    studio = await startStudio({}, studio.testDb);
    const again = new Client(studio.url);
    again.cookie = admin.cookie;
    expect((await again.get('/api/v1/models/providers/')).body.some((p: any) => p.is_simulated)).toBe(false);
    admin = again;
  });
});
