import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startFakeLlm } from '@ai-story/fake-llm';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MediaStageDefinition } from '../src/stages/definition.ts';
import { Client, setupAdmin, startStudio, type TestStudio } from './helpers.ts';
import { follow } from './sse-client.ts';

/**
 * A scripted OpenAI-compatible upstream: the model name picks a list of raw JSON string literals, each
 * streamed as one content delta — so a test can send what no well-behaved server would (half an emoji,
 * U+FFFD) byte for byte.
 */
async function scriptedUpstream(scripts: Record<string, string[]>) {
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const model = (JSON.parse(body) as { model: string }).model;
      const chunks = scripts[model] ?? ['"ok"'];
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = (delta: string, finish: string | null) =>
        `data: {"id":"c1","object":"chat.completion.chunk","created":0,"model":"${model}","choices":[{"index":0,"delta":${delta},"finish_reason":${finish === null ? 'null' : `"${finish}"`}}]}\n\n`;
      for (const literal of chunks) res.write(chunk(`{"content":${literal}}`, null));
      res.write(chunk('{}', 'stop'));
      res.end('data: [DONE]\n\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, close: () => new Promise((r) => server.close(r)) };
}

const BROKEN = /\uFFFD|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A last stage that needs nothing (the real export is built elsewhere): it lets a project reach the end. */
const instantExport: MediaStageDefinition = {
  kind: 'media',
  key: 'export',
  input: z.object({}),
  defaultInput: () => ({}),
  providerType: null,
  local: { name: 'Local', model: 'local', simulated: false },
  itemEvent: 'clip',
  concurrency: () => 1,
  shots: () => [],
  runShot: async () => [],
  output: () => ({ video: { media_id: 'none', url: '', duration_s: 0, width: 0, height: 0, size_bytes: 0 } }),
  persist: async (_store, _projectId, output) => output,
};

describe(`what a first-time creator trips over (${process.env.TEST_DB ?? 'pglite'})`, () => {
  let fake: Awaited<ReturnType<typeof startFakeLlm>>;
  let scripted: Awaited<ReturnType<typeof scriptedUpstream>>;
  let studio: TestStudio;
  let admin: Client;
  let demoId: string;
  let realId: string;

  const newProject = async (topic = '灯塔守护人阿海在暴风雨的夜里救起一头迷路的鲸鱼。') =>
    (await admin.post('/api/v1/projects/', { name: 'first', original_topic: topic })).body.id as string;
  const route = (projectId: string, stage: string, ids: string[]) => admin.put(`/api/v1/projects/${projectId}/model-config/`, { [stage]: { provider_ids: ids, strategy: 'round_robin' } });
  const runToEnd = async (projectId: string, stage: string, body: object = { input: {} }) => {
    const start = await admin.post(`/api/v1/projects/${projectId}/stages/${stage}/runs/`, body);
    expect(start.status).toBe(202);
    const seen = await follow(`${studio.url}/api/v1/runs/${start.body.id}/events`, { cookie: admin.cookie });
    return { run: (await admin.get(`/api/v1/runs/${start.body.id}/`)).body, seen };
  };

  beforeAll(async () => {
    fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    scripted = await scriptedUpstream({
      broken: ['"灯塔"', '"相机\\ud83d"', '"\\udcf7好"', '"坏\\ufffd字"', '"\\udcf7尾"', '"收\\ud83d"'],
      shots: [
        JSON.stringify(
          JSON.stringify({
            shots: [10, 1, 5, 6, 3, 12].map((d, i) => ({ sequence_number: i + 1, scene_description: `场景${i + 1}\ud83d`, narration_text: `第${i + 1}句。`, image_prompt: 'p', duration_seconds: d })),
          }),
        ),
      ],
    });
    studio = await startStudio({}, undefined, undefined, { stages: { export: instantExport } });
    admin = await setupAdmin(studio);
    const providers = (await admin.get('/api/v1/models/providers/')).body;
    demoId = providers.find((p: any) => p.is_simulated).id;
    realId = (await admin.post('/api/v1/models/providers/', { name: 'DeepSeek (simulated upstream)', api_url: fake.url, model_name: 'fake-model?ttft=1&tps=2000&tokens=40' })).body.id;
  });
  afterAll(async () => {
    await studio?.close();
    await fake?.close();
    await scripted?.close();
  });

  it('auto never picks the offline demo while a real provider is active; by hand it still runs, labelled simulated', async () => {
    const id = await newProject();
    for (let i = 0; i < 4; i++) {
      const { run, seen } = await runToEnd(id, 'rewrite');
      expect(run).toMatchObject({ status: 'completed', provider_id: realId, provider: 'DeepSeek (simulated upstream)', is_simulated: false });
      expect(seen.events.find((e) => e.data.type === 'info')!.data.message).toContain('DeepSeek (simulated upstream)');
    }
    const { run } = await runToEnd(id, 'rewrite', { input: {}, provider_id: demoId });
    expect(run).toMatchObject({ status: 'completed', provider_id: demoId, is_simulated: true });
  });

  it('after three upstream faults in a row the only provider still starts the next run at once', async () => {
    const flaky = (await admin.post('/api/v1/models/providers/', { name: 'flaky', api_url: fake.url, model_name: 'fake-model?ttft=1&tps=2000&tokens=30&quirk=cut_mid_stream&after=3&fail_times=3' })).body.id;
    const id = await newProject('三次故障之后。');
    await route(id, 'rewrite', [flaky]);
    for (let i = 0; i < 3; i++) expect((await runToEnd(id, 'rewrite')).run.status).toBe('failed');
    const { run } = await runToEnd(id, 'rewrite');
    expect(run).toMatchObject({ status: 'completed', provider_id: flaky });
  });

  it('with nothing available at all the start answers 503 unavailable with Retry-After, not 409', async () => {
    const off = (await admin.post('/api/v1/models/providers/', { name: 'off', api_url: fake.url, model_name: 'fake-model', is_active: false })).body.id;
    const limited = (await admin.post('/api/v1/models/providers/', { name: 'limited', api_url: fake.url, model_name: 'fake-model?ttft=1&tps=2000&tokens=10', rate_limit_rpm: 1 })).body.id;
    const id = await newProject();
    await route(id, 'rewrite', [off, limited]);
    await runToEnd(id, 'rewrite');
    const res = await admin.post(`/api/v1/projects/${id}/stages/rewrite/runs/`, { input: {} });
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('unavailable');
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
  });

  it('never saves U+FFFD or a lone surrogate, whatever the model sends, and keeps a pair split across deltas', async () => {
    const broken = (await admin.post('/api/v1/models/providers/', { name: 'broken text', api_url: scripted.url, model_name: 'broken' })).body.id;
    const id = await newProject();
    await route(id, 'rewrite', [broken]);
    const { run, seen } = await runToEnd(id, 'rewrite');
    expect(run.status).toBe('completed');
    expect(run.text).toBe('灯塔相机📷好坏字尾收');
    expect(seen.text).toBe(run.text);
    for (const e of seen.events.filter((e) => e.data.type === 'token')) expect(BROKEN.test(e.data.content)).toBe(false);
    const stage = (await admin.get(`/api/v1/projects/${id}/stages/`)).body.find((s: any) => s.stage_type === 'rewrite');
    expect(stage.output.rewritten_text).toBe('灯塔相机📷好坏字尾收');
  });

  it("enforces the project's shot range and the shot count asked for, and says what it adjusted", async () => {
    const shots = (await admin.post('/api/v1/models/providers/', { name: 'many shots', api_url: scripted.url, model_name: 'shots' })).body.id;
    const id = await newProject();
    expect((await admin.patch(`/api/v1/projects/${id}/`, { min_shot_s: 2, max_shot_s: 8 })).status).toBe(200);
    await route(id, 'storyboard', [shots]);
    // The run's own range (1–20) is not the project's: the project's range wins.
    const { run, seen } = await runToEnd(id, 'storyboard', { input: { text: '一。二。三。四。', shot_count: 4, min_duration: 1, max_duration: 20 } });
    expect(run.status).toBe('completed');
    const saved = (await admin.get(`/api/v1/projects/${id}/storyboards/`)).body.results;
    expect(saved).toHaveLength(4);
    for (const s of saved) {
      expect(s.duration_seconds).toBeGreaterThanOrEqual(2);
      expect(s.duration_seconds).toBeLessThanOrEqual(8);
      expect(BROKEN.test(s.scene_description)).toBe(false);
    }
    expect(saved.map((s: any) => s.narration_text).join('')).toBe('第1句。第2句。第3句。第4句。第5句。第6句。');
    const infos = seen.events.filter((e) => e.data.type === 'info').map((e) => e.data);
    expect(infos).toContainEqual(expect.objectContaining({ code: 'shots_merged', params: { asked: 4, received: 6 } }));
    expect(infos).toContainEqual(expect.objectContaining({ code: 'shot_lengths_adjusted', params: expect.objectContaining({ min: 2, max: 8 }) }));
    for (const s of seen.events.filter((e) => e.data.type === 'shot')) expect(BROKEN.test(s.data.shot.scene_description)).toBe(false);
  });

  it('a project is complete only when its last stage has a current result: skipped or stale stages are not done', async () => {
    const id = await newProject('老街的修表匠修好了最后一只表。孩子们围在门口。');
    const project = async () => (await admin.get(`/api/v1/projects/${id}/`)).body;
    const listed = async () => (await admin.get('/api/v1/projects/')).body.results.find((p: any) => p.id === id);
    await runToEnd(id, 'rewrite');
    await runToEnd(id, 'storyboard');
    await runToEnd(id, 'camera');
    for (const stage of ['image', 'narration', 'video']) await admin.post(`/api/v1/projects/${id}/stages/${stage}/skip/`);
    expect((await project()).status).toBe('draft');
    expect((await listed()).progress).toBe(0.43);

    await runToEnd(id, 'export');
    expect((await project()).status).toBe('completed');

    // A new rewrite puts everything after it out of date: no longer complete, and the list says which.
    await runToEnd(id, 'rewrite');
    const after = await project();
    expect(after.status).toBe('draft');
    expect(after.stale_stages).toEqual(['storyboard', 'camera', 'export']);
    expect((await listed()).stale_stages).toEqual(['storyboard', 'camera', 'export']);
    expect((await listed()).progress).toBe(0.14);
    const image = after.stages.find((s: any) => s.stage_type === 'image');
    expect(image).toMatchObject({ status: 'skipped', status_reason: 'Skipped by the user', status_reason_code: 'skipped_by_user', status_reason_params: {} });
  });

  it('with ?compat=seed every token event carries full_text, the deltas so far; without it only deltas', async () => {
    const paced = (await admin.post('/api/v1/models/providers/', { name: 'paced', api_url: fake.url, model_name: 'fake-model?ttft=1&tps=30&tokens=30' })).body.id;
    const id = await newProject();
    await route(id, 'rewrite', [paced]);
    const seed = await follow(`${studio.url}/api/v1/projects/${id}/rewrite-stream/?compat=seed`, { cookie: admin.cookie, method: 'POST', body: {} });
    const tokens = seed.events.filter((e) => e.data.type === 'token');
    expect(tokens.length).toBeGreaterThan(3);
    let soFar = '';
    for (const t of tokens) {
      soFar += t.data.content;
      expect(t.data.full_text).toBe(soFar);
    }
    expect(seed.events.at(-1)!.data.full_text).toBe(soFar);

    const runId = seed.events.find((e) => e.data.run_id)!.data.run_id;
    const replay = await follow(`${studio.url}/api/v1/runs/${runId}/events?compat=seed`, { cookie: admin.cookie });
    const replayed = replay.events.filter((e) => e.data.type === 'token');
    expect(replayed.at(-1)!.data.full_text).toBe(soFar);

    const plain = await follow(`${studio.url}/api/v1/projects/${id}/rewrite-stream/`, { cookie: admin.cookie, method: 'POST', body: {} });
    expect(plain.events.filter((e) => e.data.type === 'token').every((e) => e.data.full_text === undefined)).toBe(true);
  });

  it('stopping a run says why as a code beside the text', async () => {
    const slow = (await admin.post('/api/v1/models/providers/', { name: 'slow', api_url: fake.url, model_name: 'fake-model?ttft=1&tps=20&tokens=400' })).body.id;
    const id = await newProject();
    await route(id, 'rewrite', [slow]);
    const run = (await admin.post(`/api/v1/projects/${id}/stages/rewrite/runs/`, { input: {} })).body;
    await admin.post(`/api/v1/runs/${run.id}/cancel/`);
    const stage = (await admin.get(`/api/v1/projects/${id}/stages/`)).body.find((s: any) => s.stage_type === 'rewrite');
    expect(stage).toMatchObject({ status: 'cancelled', status_reason: 'Stopped by the user', status_reason_code: 'stopped_by_user' });
  });
});
