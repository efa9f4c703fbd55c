import { startFakeLlm } from '@ai-story/fake-llm';
import { describe, expect, it } from 'vitest';
import { ADMIN, Client, createTestDatabase, expectedRewrite, leasesExpired, spawnStudio, startStudio } from './helpers.ts';
import { follow } from './sse-client.ts';

describe(`crash recovery (${process.env.TEST_DB ?? 'pglite'})`, () => {
  it('marks a run left running by a killed server as interrupted after restart, with its partial text', { timeout: 240_000 }, async () => {
    const fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    const testDb = await createTestDatabase();
    const studioProcess = await spawnStudio(testDb);
    try {
      const base = studioProcess.base;
      const admin = new Client(base);
      expect((await admin.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password })).status).toBe(200);
      const provider = await admin.post('/api/v1/models/providers/', { name: 'slow', api_url: fake.url, model_name: 'fake-model?ttft=10&tps=30&tokens=2000' });
      const project = await admin.post('/api/v1/projects/', { name: 'crash', original_topic: '深夜的地铁站里，一位老人在等最后一班车 🚇' });
      const run = await admin.post(`/api/v1/projects/${project.body.id}/stages/rewrite/runs/`, { input: {}, provider_id: provider.body.id });
      expect(run.status).toBe(202);
      // Watch long enough for at least one checkpoint (at most one a second) to reach the database.
      const watched = await follow(`${base}/api/v1/runs/${run.body.id}/events`, { cookie: admin.cookie, stopWhen: () => false, timeoutMs: 2_600 }).catch(() => null);
      void watched;
      await studioProcess.kill();
      await leasesExpired(testDb);

      const studio = await startStudio({}, testDb);
      try {
        const c = new Client(studio.url);
        await c.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password });
        const after = (await c.get(`/api/v1/runs/${run.body.id}/`)).body;
        expect(after.status).toBe('interrupted');
        expect(after.text.length).toBeGreaterThan(0);
        const expected = expectedRewrite(run.body);
        expect(expected.startsWith(after.text)).toBe(true);
        const stage = (await c.get(`/api/v1/projects/${project.body.id}/stages/`)).body[0];
        expect(stage.status).toBe('interrupted');
        const replay = await follow(`${studio.url}/api/v1/runs/${run.body.id}/events`, { cookie: c.cookie });
        expect(replay.text).toBe(after.text);
        expect(replay.events.at(-1)!.data).toMatchObject({ type: 'stage_update', status: 'interrupted' });
      } finally {
        await studio.close();
      }
    } finally {
      await studioProcess.kill();
      await fake.close();
    }
  });
});
