import { startFakeLlm } from '@ai-story/fake-llm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, createUser, setupAdmin, startStudio, type TestStudio } from './helpers.ts';
import { holdAccessReads } from './hold-access-reads.ts';
import { follow, followOpened } from './sse-client.ts';

describe(`pipeline, model routing and shared projects (${process.env.TEST_DB ?? 'pglite'})`, () => {
  let fake: Awaited<ReturnType<typeof startFakeLlm>>;
  let studio: TestStudio;
  let admin: Client;
  let owner: Client & { id: string };
  let viewer: Client & { id: string };
  let editor: Client & { id: string };
  let stranger: Client & { id: string };
  let fast: string;
  let slowish: string;

  const stageStatuses = async (projectId: string, who: Client = owner) =>
    Object.fromEntries((await who.get(`/api/v1/projects/${projectId}/stages/`)).body.map((s: any) => [s.stage_type, s.status]));

  // The pipeline speaks, renders and exports every shot offline: minutes on a busy machine at worst.
  const waitFor = async (check: () => Promise<boolean>, what: string, ms = 300_000) => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${what}`);
  };
  const projectStatus = async (id: string) => (await owner.get(`/api/v1/projects/${id}/`)).body.status;
  /** The pipeline ran to its end: nothing runs, it is idle, and the last stage it could run is done. */
  const pipelineEnded = async (id: string) => {
    const p = (await owner.get(`/api/v1/projects/${id}/`)).body;
    return p.pipeline_state === 'idle' && p.status !== 'processing' && p.stages.find((s: any) => s.stage_type === 'camera').status === 'completed';
  };

  beforeAll(async () => {
    fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    studio = await startStudio();
    admin = await setupAdmin(studio);
    // Only real (simulated-upstream) providers: switch off the offline demo.
    for (const p of (await admin.get('/api/v1/models/providers/')).body) await admin.patch(`/api/v1/models/providers/${p.id}/`, { is_active: false });
    fast = (await admin.post('/api/v1/models/providers/', { name: 'fast', api_url: fake.url, model_name: 'fake-model?ttft=5&tps=400&tokens=60' })).body.id;
    slowish = (await admin.post('/api/v1/models/providers/', { name: 'slowish', api_url: fake.url, model_name: 'fake-model?ttft=5&tps=40&tokens=40', priority: 0 })).body.id;
    owner = await createUser(studio, admin, 'owner@example.com');
    viewer = await createUser(studio, admin, 'viewer@example.com');
    editor = await createUser(studio, admin, 'editor@example.com');
    stranger = await createUser(studio, admin, 'stranger@example.com');
  });
  afterAll(async () => {
    await studio?.close();
    await fake?.close();
  });

  const newProject = async () => {
    const id = (await owner.post('/api/v1/projects/', { name: 'pipeline', original_topic: '老街的修表匠。他修好了最后一只表。孩子们围在门口。夕阳照在玻璃柜上。' })).body.id as string;
    await owner.put(`/api/v1/projects/${id}/model-config/`, { rewrite: { provider_ids: [fast], strategy: 'round_robin' }, storyboard: { provider_ids: [fast], strategy: 'round_robin' }, camera: { provider_ids: [fast], strategy: 'round_robin' } });
    // Short shots (a real project setting): the media stages render little, so a whole pipeline stays quick.
    await owner.patch(`/api/v1/projects/${id}/`, { min_shot_s: 1, max_shot_s: 2 });
    return id;
  };

  it('executes every stage with one call and ends completed, offline methods making the media and the export putting them together', async () => {
    const id = await newProject();
    const res = await owner.post(`/api/v1/projects/${id}/execute/`, {});
    expect(res.status).toBe(202);
    await waitFor(async () => (await projectStatus(id)) === 'completed', 'the pipeline to complete');
    expect(await stageStatuses(id)).toEqual({ rewrite: 'completed', storyboard: 'completed', camera: 'completed', image: 'completed', narration: 'completed', video: 'completed', export: 'completed' });
    const stages = (await owner.get(`/api/v1/projects/${id}/stages/`)).body;
    const shotCount = (await owner.get(`/api/v1/projects/${id}/storyboards/`)).body.count;
    // No media provider here: the offline image model, espeak-ng and local camera motion made the media.
    expect(stages.find((s: any) => s.stage_type === 'image').output.images).toHaveLength(shotCount);
    expect(stages.find((s: any) => s.stage_type === 'narration').output.narration).toHaveLength(shotCount);
    expect(stages.find((s: any) => s.stage_type === 'video').output.clips).toHaveLength(shotCount);
    // The export put them together: one MP4 of every shot.
    expect(stages.find((s: any) => s.stage_type === 'export').output).toMatchObject({ video: { url: expect.stringMatching(/^\/api\/v1\/media\//) }, failed_shot_ids: [] });
    expect((await owner.get(`/api/v1/projects/${id}/camera-movements/`)).body.count).toBe((await owner.get(`/api/v1/projects/${id}/storyboards/`)).body.count);
    expect((await owner.get('/api/v1/projects/')).body.results.find((p: any) => p.id === id).progress).toBe(1);
  }, 420_000);

  it('holds a pause between stages, then resumes to the end', async () => {
    const id = await newProject();
    await owner.put(`/api/v1/projects/${id}/model-config/`, { rewrite: { provider_ids: [slowish], strategy: 'round_robin' }, storyboard: { provider_ids: [fast], strategy: 'random' }, camera: { provider_ids: [fast], strategy: 'random' } });
    await owner.post(`/api/v1/projects/${id}/execute/`, {});
    const paused = await owner.post(`/api/v1/projects/${id}/pause/`);
    expect(paused.status).toBe(200);
    expect(['pausing', 'paused']).toContain(paused.body.pipeline_state);
    await waitFor(async () => (await projectStatus(id)) === 'paused', 'the pause to take hold');
    await new Promise((r) => setTimeout(r, 500));
    const held = await stageStatuses(id);
    expect(held.rewrite).toBe('completed');
    expect(held.storyboard).toBe('pending');
    expect((await owner.post(`/api/v1/projects/${id}/resume/`)).status).toBe(200);
    await waitFor(() => pipelineEnded(id), 'the resumed pipeline to end');
    expect((await owner.get(`/api/v1/projects/${id}/`)).body.pipeline_state).toBe('idle');
  }, 360_000);

  it('retries and skips a stage, and marks later stages stale when an earlier one changes', async () => {
    const id = await newProject();
    await owner.post(`/api/v1/projects/${id}/execute/`, {});
    await waitFor(() => pipelineEnded(id), 'the pipeline to end');
    const retried = await owner.post(`/api/v1/projects/${id}/stages/rewrite/retry/`);
    expect(retried.status).toBe(202);
    await follow(`${studio.url}/api/v1/runs/${retried.body.id}/events`, { cookie: owner.cookie });
    const stages = (await owner.get(`/api/v1/projects/${id}/stages/`)).body;
    expect(stages.find((s: any) => s.stage_type === 'storyboard').stale).toBe(true);
    expect(stages.find((s: any) => s.stage_type === 'camera').stale).toBe(true);
    const skipped = await owner.post(`/api/v1/projects/${id}/stages/camera/skip/`);
    expect(skipped.body.stages.find((s: any) => s.stage_type === 'camera').status).toBe('skipped');
    expect((await owner.post(`/api/v1/projects/${id}/stages/nonsense/skip/`)).status).toBe(404);
  }, 360_000);

  it('fails over to the next provider when one fails before the first token, and the run shows who answered', async () => {
    const broken = (await admin.post('/api/v1/models/providers/', { name: 'broken', api_url: fake.url, model_name: 'fake-model?quirk=http_500', timeout_s: 2 })).body.id;
    const id = await newProject();
    await owner.put(`/api/v1/projects/${id}/model-config/`, { rewrite: { provider_ids: [broken, fast], strategy: 'round_robin' } });
    const run = (await owner.post(`/api/v1/projects/${id}/stages/rewrite/runs/`, { input: {} })).body;
    const seen = await follow(`${studio.url}/api/v1/runs/${run.id}/events`, { cookie: owner.cookie });
    expect(seen.events.at(-1)!.data.type).toBe('done');
    const saved = (await owner.get(`/api/v1/runs/${run.id}/`)).body;
    expect(saved.provider_id).toBe(fast);
    expect(saved.provider).toBe('fast');
  });

  it('lets a viewer watch live but change nothing, an editor work, and keeps a stranger out', async () => {
    const id = await newProject();
    expect((await owner.post(`/api/v1/projects/${id}/members/`, { email: 'viewer@example.com', role: 'viewer' })).status).toBe(202);
    expect((await owner.post(`/api/v1/projects/${id}/members/`, { user_id: editor.id, role: 'editor' })).status).toBe(201);
    expect((await viewer.get('/api/v1/projects/')).body.results.map((p: any) => p.id)).toContain(id);

    await owner.put(`/api/v1/projects/${id}/model-config/`, { rewrite: { provider_ids: [slowish], strategy: 'round_robin' } });
    const run = (await editor.post(`/api/v1/projects/${id}/stages/rewrite/runs/`, { input: {} })).body;
    expect(run.id).toBeTruthy();
    const watched = await follow(`${studio.url}/api/v1/runs/${run.id}/events`, { cookie: viewer.cookie });
    expect(watched.events.at(-1)!.data.type).toBe('done');
    expect(watched.text.length).toBeGreaterThan(10);

    const writes = [
      viewer.patch(`/api/v1/projects/${id}/`, { name: 'x' }),
      viewer.post(`/api/v1/projects/${id}/stages/rewrite/runs/`, { input: {} }),
      viewer.post(`/api/v1/projects/${id}/execute/`, {}),
      viewer.post(`/api/v1/projects/${id}/stages/rewrite/retry/`),
      viewer.post(`/api/v1/projects/${id}/stages/rewrite/skip/`),
      viewer.patch(`/api/v1/projects/${id}/stages/rewrite/`, { output: { rewritten_text: 'x' } }),
      viewer.post(`/api/v1/runs/${run.id}/restore/`),
      viewer.post(`/api/v1/projects/${id}/storyboards/`, {}),
      viewer.put(`/api/v1/projects/${id}/model-config/`, {}),
      viewer.post(`/api/v1/projects/${id}/members/`, { email: 'stranger@example.com', role: 'viewer' }),
      viewer.delete(`/api/v1/projects/${id}/`),
    ];
    for (const res of await Promise.all(writes)) expect(res.status).toBe(403);
    for (const res of await Promise.all([stranger.get(`/api/v1/projects/${id}/`), stranger.get(`/api/v1/runs/${run.id}/`), stranger.post(`/api/v1/projects/${id}/execute/`, {}), stranger.get(`/api/v1/projects/${id}/events`)])) {
      expect(res.status).toBe(404);
    }
    expect((await editor.delete(`/api/v1/projects/${id}/`)).status).toBe(403); // only the owner deletes
  });

  it("ends a revoked viewer's open stream with access_revoked", async () => {
    const id = await newProject();
    await owner.post(`/api/v1/projects/${id}/members/`, { user_id: viewer.id, role: 'viewer' });
    const { opened, result: stream } = followOpened(`${studio.url}/api/v1/projects/${id}/events`, { cookie: viewer.cookie, timeoutMs: 10_000 });
    await opened;
    expect((await owner.delete(`/api/v1/projects/${id}/members/${viewer.id}/`)).status).toBe(204);
    const seen = await stream;
    expect(seen.ended).toBe('closed');
    expect(seen.events.at(-1)!.data).toEqual({ type: 'access_revoked', project_id: id, reason: 'removed' });
    expect((await viewer.get(`/api/v1/projects/${id}/`)).status).toBe(404);
  });

  it("ends the owner's and a member's open streams of a deleted project, saying it was deleted", async () => {
    const id = await newProject();
    await owner.post(`/api/v1/projects/${id}/members/`, { user_id: viewer.id, role: 'viewer' });
    const streams = [owner, viewer].map((user) => followOpened(`${studio.url}/api/v1/projects/${id}/events`, { cookie: user.cookie, timeoutMs: 10_000 }));
    await Promise.all(streams.map((s) => s.opened));
    expect((await owner.delete(`/api/v1/projects/${id}/`)).status).toBe(204);
    for (const seen of await Promise.all(streams.map((s) => s.result))) {
      expect(seen.ended).toBe('closed');
      expect(seen.events.at(-1)!.data).toEqual({ type: 'access_revoked', project_id: id, reason: 'deleted' });
    }
  });

  it('refuses the stream of a reader removed while it opens: after its access read, before its guard listens', async () => {
    const id = await newProject();
    await owner.post(`/api/v1/projects/${id}/members/`, { user_id: viewer.id, role: 'viewer' });
    // The viewer's access read answers (a member still), then waits while the owner removes them.
    const reads = holdAccessReads();
    try {
      const stream = follow(`${studio.url}/api/v1/projects/${id}/events`, { cookie: viewer.cookie, timeoutMs: 10_000 });
      await reads.read;
      expect((await owner.delete(`/api/v1/projects/${id}/members/${viewer.id}/`)).status).toBe(204);
      reads.release();
      expect((await stream).status).toBe(404);
    } finally {
      reads.restore();
    }
  });
});
