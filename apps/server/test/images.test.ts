import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { startFakeLlm } from '@ai-story/fake-llm';
import { startFakeImage, type FakeImageServer } from '@ai-story/fake-media/image/index.ts';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, Client, createTestDatabase, createUser, leasesExpired, setupAdmin, spawnStudio, startStudio, type TestStudio } from './helpers.ts';
import { follow, type ReceivedEvent } from './sse-client.ts';

const STORY = '雨夜的城市。老人在街角的小店里修钟表。一个女孩推门进来，手里抱着一只旧钟。老人认出了那只钟。黄昏，两人走到海边。灯塔亮起来。第二天清晨，钟又走了。女孩笑了。';
const ofType = (events: ReceivedEvent[], type: string) => events.filter((e) => e.data.type === type);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** Where each vendor shape's base URL sits on the simulated upstream, and a model whose sizes include 720×1280. */
const SHAPES = [
  { api_format: 'openai', base: (f: FakeImageServer) => `${f.url}/v1`, model: 'doubao-seedream-3-0-t2i' },
  { api_format: 'siliconflow', base: (f: FakeImageServer) => `${f.url}/v1`, model: 'Kwai-Kolors/Kolors' },
  { api_format: 'dashscope', base: (f: FakeImageServer) => f.url, model: 'wan2.2-t2i-flash' },
] as const;

describe(`the image stage (文生图) (${process.env.TEST_DB ?? 'pglite'})`, () => {
  let llmFake: Awaited<ReturnType<typeof startFakeLlm>>;
  let fake: FakeImageServer;
  let studio: TestStudio;
  let admin: Client;
  let llm: string;

  const newProjectWithShots = async (name: string, count = 8) => {
    const id = (await admin.post('/api/v1/projects/', { name, original_topic: STORY })).body.id as string;
    const res = await admin.post(`/api/v1/projects/${id}/stages/storyboard/runs/`, { input: { shot_count: count }, provider_id: llm });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    await follow(`${studio.url}/api/v1/runs/${res.body.id}/events`, { cookie: admin.cookie });
    const shots = (await admin.get(`/api/v1/projects/${id}/storyboards/`)).body.results as { id: string; image_prompt: string }[];
    expect(shots).toHaveLength(count);
    return { id, shots };
  };
  const addProvider = async (shape: (typeof SHAPES)[number], server: FakeImageServer, extra: Record<string, unknown> = {}) => {
    const res = await admin.post('/api/v1/models/providers/', {
      name: `fake ${shape.api_format} ${Math.random().toString(36).slice(2, 6)}`,
      provider_type: 'text2image',
      api_format: shape.api_format,
      api_url: shape.base(server),
      api_key: 'sk-test',
      model_name: shape.model,
      ...extra,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as string;
  };
  const startImages = async (projectId: string, body: Record<string, unknown>) => {
    const res = await admin.post(`/api/v1/projects/${projectId}/stages/image/runs/`, body);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body.id as string;
  };
  const download = async (url: string) => {
    const res = await fetch(studio.url + url, { headers: { cookie: admin.cookie } });
    expect(res.status).toBe(200);
    return Buffer.from(await res.arrayBuffer());
  };
  const imageStage = async (projectId: string) => (await admin.get(`/api/v1/projects/${projectId}/stages/`)).body.find((s: { stage_type: string }) => s.stage_type === 'image');
  const totalRequests = (f: FakeImageServer) => Object.values(f.stats.requests).reduce((a, b) => a + b, 0);

  beforeAll(async () => {
    llmFake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    fake = await startFakeImage({ apiKey: 'sk-test' });
    studio = await startStudio();
    admin = await setupAdmin(studio);
    llm = (await admin.post('/api/v1/models/providers/', { name: 'fake llm', api_url: llmFake.url, model_name: 'fake-model?ttft=5&tps=2000' })).body.id;
  });
  afterAll(async () => {
    await studio?.close();
    await fake?.close();
    await llmFake?.close();
  });

  // First, while no text-to-image provider exists: the offline model is the one used.
  it('with no image provider, the offline model (labelled simulated) draws every shot, each with a thumbnail', async () => {
    const { id, shots } = await newProjectWithShots('offline', 4);
    const runId = await startImages(id, { input: {} });
    const seen = await follow(`${studio.url}/api/v1/runs/${runId}/events`, { cookie: admin.cookie, timeoutMs: 60_000 });
    const done = seen.events.at(-1)!.data;
    expect(done.type, JSON.stringify(done)).toBe('done');
    expect(done.output.images.map((i: { shot_id: string }) => i.shot_id)).toEqual(shots.map((s) => s.id));
    const run = (await admin.get(`/api/v1/runs/${runId}/`)).body;
    expect(run).toMatchObject({ provider: 'Offline image model', is_simulated: true });
    const first = done.output.images[0];
    expect(first).toMatchObject({ source: 'offline', width: 720, height: 1280, chosen: true });
    const thumb = await sharp(await download(first.thumb_url)).metadata();
    expect(thumb.format).toBe('webp');
    expect(Math.max(thumb.width!, thumb.height!)).toBeLessThanOrEqual(320);
    const pictures = await Promise.all(done.output.images.map((i: { url: string }) => download(i.url).then(sha)));
    expect(new Set(pictures).size).toBe(4);
  });

  it.each(SHAPES)('$api_format shape: 8 shots give 8 images whose bytes are what the upstream served, each sent before done, cost recorded per image', async (shape) => {
    const provider = await addProvider(shape, fake, { price_per_unit: 0.25 });
    const { id, shots } = await newProjectWithShots(`shape ${shape.api_format}`);
    const servedBefore = fake.stats.served.length;
    const runId = await startImages(id, { input: {}, provider_id: provider });
    const seen = await follow(`${studio.url}/api/v1/runs/${runId}/events`, { cookie: admin.cookie, timeoutMs: 60_000 });
    const types = seen.events.map((e) => e.data.type);
    expect(types.at(-1), JSON.stringify(seen.events.at(-1)?.data)).toBe('done');
    const images = ofType(seen.events, 'image');
    expect(images).toHaveLength(8);
    expect(types.lastIndexOf('image')).toBeLessThan(types.indexOf('done'));
    expect(new Set(images.map((e) => e.data.shot_id))).toEqual(new Set(shots.map((s) => s.id)));
    const served = new Set(fake.stats.served.slice(servedBefore).map((s) => s.sha256));
    expect(served.size).toBe(8);
    for (const e of images) expect(served.has(sha(await download(e.data.image.url)))).toBe(true);
    const run = (await admin.get(`/api/v1/runs/${runId}/`)).body;
    expect(run.usage.cost).toBeCloseTo(8 * 0.25);
    expect(run.is_simulated).toBe(false);
    expect(seen.events.at(-1)!.data.output.images.every((i: { source: string; width: number; height: number }) => i.source === 'generated' && i.width === 720 && i.height === 1280)).toBe(true);
    // Not used again automatically by the next tests.
    await admin.patch(`/api/v1/models/providers/${provider}/`, { is_active: false });
  });

  it('a reconnect with Last-Event-ID mid-run gets exactly the missed events; a cancel keeps the images finished before it', async () => {
    const slow = await startFakeImage({ defaults: { taskMs: 700 } });
    try {
      const provider = await addProvider(SHAPES[2], slow);
      const { id } = await newProjectWithShots('resume');
      const runId = await startImages(id, { input: {}, provider_id: provider });
      const before = await follow(`${studio.url}/api/v1/runs/${runId}/events`, { cookie: admin.cookie, stopWhen: (e) => ofType(e, 'image').length >= 2, timeoutMs: 30_000 });
      const lastId = before.events.at(-1)!.id;
      const rest = await follow(`${studio.url}/api/v1/runs/${runId}/events`, { cookie: admin.cookie, lastEventId: lastId, timeoutMs: 60_000 });
      expect(rest.events[0].id).toBe(lastId + 1);
      const all = [...before.events, ...rest.events];
      const imageShots = ofType(all, 'image').map((e) => e.data.shot_id);
      expect(imageShots).toHaveLength(8);
      expect(new Set(imageShots).size).toBe(8);
      expect(rest.events.at(-1)!.data.type).toBe('done');

      const second = await startImages(id, { input: {}, provider_id: provider });
      await follow(`${studio.url}/api/v1/runs/${second}/events`, { cookie: admin.cookie, stopWhen: (e) => ofType(e, 'image').length >= 1, timeoutMs: 30_000 });
      expect((await admin.post(`/api/v1/runs/${second}/cancel/`)).body.status).toBe('cancelled');
      const replay = await follow(`${studio.url}/api/v1/runs/${second}/events`, { cookie: admin.cookie });
      const kept = ofType(replay.events, 'image');
      expect(kept.length).toBeGreaterThanOrEqual(1);
      expect(kept.length).toBeLessThan(8);
      for (const e of kept) await download(e.data.image.url);
      expect(replay.events.at(-1)!.data).toMatchObject({ type: 'stage_update', status: 'cancelled' });
      await admin.patch(`/api/v1/models/providers/${provider}/`, { is_active: false });
    } finally {
      await slow.close();
    }
  });

  it('an expiring vendor URL is fetched in time; a task failing mid-poll or a moderation refusal fails only its shot, in the vendor words', async () => {
    const expiring = await startFakeImage({ urlTtlMs: 1_500 });
    try {
      const dash = await addProvider(SHAPES[2], expiring);
      const openai = await addProvider(SHAPES[0], expiring);
      const { id, shots } = await newProjectWithShots('faults');
      const ok = await follow(`${studio.url}/api/v1/runs/${await startImages(id, { input: {}, provider_id: dash })}/events`, { cookie: admin.cookie, timeoutMs: 60_000 });
      expect(ok.events.at(-1)!.data.output.failed_shot_ids).toEqual([]);
      expect(expiring.stats.expiredFetches).toBe(0);

      await admin.patch(`/api/v1/storyboards/${shots[2].id}/`, { image_prompt: `${shots[2].image_prompt} [fake: fail_mid_task]` });
      await admin.patch(`/api/v1/storyboards/${shots[5].id}/`, { image_prompt: `${shots[5].image_prompt} [fake: moderation]` });
      // A new image prompt makes just that shot stale: the default run would redo only those two.
      expect((await imageStage(id)).stale_shot_ids.sort()).toEqual([shots[2].id, shots[5].id].sort());
      const midPoll = await follow(`${studio.url}/api/v1/runs/${await startImages(id, { input: { shot_ids: shots.map((s) => s.id) }, provider_id: dash })}/events`, { cookie: admin.cookie, timeoutMs: 60_000 });
      const done = midPoll.events.at(-1)!.data;
      expect(done.type, JSON.stringify(done)).toBe('done');
      expect(done.output.failed_shot_ids).toContain(shots[2].id);
      expect(ofType(midPoll.events, 'task').find((e) => e.data.shot_id === shots[2].id && e.data.status === 'failed')?.data.message).toMatch(/failed while generating/);
      expect(ofType(midPoll.events, 'image')).toHaveLength(8 - done.output.failed_shot_ids.length);

      const refused = await follow(`${studio.url}/api/v1/runs/${await startImages(id, { input: { shot_ids: [shots[4].id, shots[5].id] }, provider_id: openai })}/events`, { cookie: admin.cookie, timeoutMs: 60_000 });
      expect(refused.events.at(-1)!.data.output.failed_shot_ids).toEqual([shots[5].id]);
      const failedTask = ofType(refused.events, 'task').find((e) => e.data.shot_id === shots[5].id && e.data.status === 'failed');
      expect(failedTask?.data.message).toMatch(/moderation/i);
      // The other shots' images of the previous output stay, the redone shot gains its new candidate.
      const images = refused.events.at(-1)!.data.output.images as { shot_id: string }[];
      // (shot 3 failed mid-poll and kept the image of the run before.)
      expect(new Set(images.map((i) => i.shot_id))).toEqual(new Set(shots.map((s) => s.id)));
      const okShot3 = ok.events.at(-1)!.data.output.images.filter((i: { shot_id: string }) => i.shot_id === shots[2].id);
      expect(images.filter((i) => i.shot_id === shots[2].id)).toEqual(okShot3);
      expect(images.filter((i) => i.shot_id === shots[4].id)).toHaveLength(3);
    } finally {
      for (const p of (await admin.get('/api/v1/models/providers/')).body) {
        if (p.api_url?.startsWith(expiring.url)) await admin.patch(`/api/v1/models/providers/${p.id}/`, { is_active: false });
      }
      await expiring.close();
    }
  });

  it('a vendor URL on a private address of another host is refused, and nothing is fetched from it', async () => {
    const elsewhere = await startFakeImage();
    try {
      // The provider is 127.0.0.1; its answers point at "localhost" — another host that resolves to loopback.
      elsewhere.handler.origin = elsewhere.url.replace('127.0.0.1', 'localhost');
      const provider = await addProvider(SHAPES[1], elsewhere);
      const { id } = await newProjectWithShots('private', 3);
      const seen = await follow(`${studio.url}/api/v1/runs/${await startImages(id, { input: {}, provider_id: provider })}/events`, { cookie: admin.cookie, timeoutMs: 30_000 });
      expect(seen.events.at(-1)!.data).toMatchObject({ type: 'error', code: 'all_shots_failed' });
      expect(ofType(seen.events, 'task').find((e) => e.data.status === 'failed')?.data.message).toMatch(/private or local address/);
      expect(elsewhere.stats.requests.file).toBe(0);
      await admin.patch(`/api/v1/models/providers/${provider}/`, { is_active: false });
    } finally {
      await elsewhere.close();
    }
  });

  it('a run whose estimate passes the budget cap is refused before any vendor call; the estimate says so first', async () => {
    const provider = await addProvider(SHAPES[0], fake, { price_per_unit: 0.2 });
    const { id } = await newProjectWithShots('budget');
    expect((await admin.patch(`/api/v1/projects/${id}/stages/image/settings/`, { budget_cap: 1, candidates: 2 })).status).toBe(200);
    const estimate = (await admin.get(`/api/v1/projects/${id}/stages/image/estimate/?provider_id=${provider}`)).body;
    expect(estimate).toMatchObject({ shots: 8, candidates: 2, images: 16, price_per_unit: 0.2, budget_cap: 1, within_budget: false });
    expect(estimate.cost).toBeCloseTo(3.2);
    const calls = totalRequests(fake);
    const refused = await admin.post(`/api/v1/projects/${id}/stages/image/runs/`, { input: {}, provider_id: provider });
    expect(refused.status).toBe(400);
    expect(refused.body.error.details.fields.budget_cap).toMatch(/budget cap of 1/);
    expect(totalRequests(fake)).toBe(calls);
    expect((await imageStage(id)).current_run_id).toBeNull();
    // Within the cap it runs.
    expect((await admin.patch(`/api/v1/projects/${id}/stages/image/settings/`, { budget_cap: 5 })).status).toBe(200);
    const ran = await follow(`${studio.url}/api/v1/runs/${await startImages(id, { input: {}, provider_id: provider })}/events`, { cookie: admin.cookie, timeoutMs: 60_000 });
    expect(ran.events.at(-1)!.data.output.images).toHaveLength(16);
    await admin.patch(`/api/v1/models/providers/${provider}/`, { is_active: false });
  });

  it('picking a candidate changes the current output in place; regenerating a shot adds candidates and keeps the pick; a new prompt marks only that shot stale; clean-up removes the unpicked', async () => {
    const { id, shots } = await newProjectWithShots('pick', 3);
    await admin.patch(`/api/v1/projects/${id}/stages/image/settings/`, { candidates: 2 });
    const first = await follow(`${studio.url}/api/v1/runs/${await startImages(id, { input: {} })}/events`, { cookie: admin.cookie, timeoutMs: 60_000 });
    const out = first.events.at(-1)!.data.output;
    expect(out, JSON.stringify(first.events.at(-1)!.data)).toBeTruthy();
    expect(out.images).toHaveLength(6);
    const second = out.images.filter((i: { shot_id: string }) => i.shot_id === shots[0].id)[1];
    expect(second.chosen).toBe(false);
    const runsBefore = (await admin.get(`/api/v1/projects/${id}/stages/image/runs/`)).body.count;
    const chose = await admin.post(`/api/v1/projects/${id}/images/${second.id}/choose/`);
    expect(chose.status, JSON.stringify(chose.body)).toBe(200);
    expect(chose.body.images.filter((i: { chosen: boolean; shot_id: string }) => i.shot_id === shots[0].id && i.chosen).map((i: { id: string }) => i.id)).toEqual([second.id]);
    expect((await admin.get(`/api/v1/projects/${id}/stages/image/runs/`)).body.count).toBe(runsBefore);
    expect((await imageStage(id)).output.images.find((i: { id: string }) => i.id === second.id).chosen).toBe(true);

    const again = await follow(`${studio.url}/api/v1/runs/${await startImages(id, { input: { shot_ids: [shots[0].id], prompt_overrides: { [shots[0].id]: '海边的灯塔，黄昏' } } })}/events`, {
      cookie: admin.cookie,
      timeoutMs: 60_000,
    });
    const mine = again.events.at(-1)!.data.output.images.filter((i: { shot_id: string }) => i.shot_id === shots[0].id);
    expect(mine).toHaveLength(4);
    expect(mine.filter((i: { chosen: boolean }) => i.chosen).map((i: { id: string }) => i.id)).toEqual([second.id]);

    await admin.patch(`/api/v1/storyboards/${shots[1].id}/`, { image_prompt: '森林里的小屋，雪夜' });
    const stale = await imageStage(id);
    expect(stale.stale).toBe(false);
    expect(stale.stale_shot_ids).toEqual([shots[1].id]);

    const usage = (await admin.get(`/api/v1/projects/${id}/media/usage/`)).body;
    expect(usage.unpicked, JSON.stringify(usage)).toBeTruthy();
    expect(usage.unpicked.rows).toBeGreaterThan(0);
    const unpicked = (await imageStage(id)).output.images.filter((i: { chosen: boolean }) => !i.chosen);
    const cleaned = (await admin.post(`/api/v1/projects/${id}/media/clean-up/`)).body;
    expect(cleaned.removed_rows).toBe(usage.unpicked.rows);
    expect(cleaned.freed_bytes).toBeGreaterThan(0);
    const after = (await admin.get(`/api/v1/projects/${id}/media/usage/`)).body;
    expect(after.unpicked.rows).toBe(0);
    expect(after.bytes).toBeLessThan(usage.bytes);
    const kept = (await imageStage(id)).output.images;
    expect(kept).toHaveLength(3);
    for (const i of kept) await download(i.url);
    expect((await admin.get(unpicked[0].url)).status).toBe(404);
  });

  it('uploads are checked by content: a PNG named .jpg is kept as PNG, HTML named .png is refused, 21 MB is too large, and nothing is stored on refusal', async () => {
    const { id, shots } = await newProjectWithShots('upload', 2);
    const upload = (body: Buffer, type: string) =>
      fetch(`${studio.url}/api/v1/projects/${id}/storyboards/${shots[0].id}/images/`, { method: 'POST', headers: { cookie: admin.cookie, 'content-type': type, origin: studio.url }, body: new Uint8Array(body) });
    const png = await sharp({ create: { width: 90, height: 160, channels: 3, background: '#336699' } }).png().toBuffer();
    const usage0 = (await admin.get(`/api/v1/projects/${id}/media/usage/`)).body;

    const html = await upload(Buffer.from('<!doctype html><html><body>not a picture</body></html>'), 'image/png');
    expect(html.status).toBe(400);
    const big = await upload(Buffer.alloc(21 * 1024 * 1024, 1), 'image/jpeg');
    expect(big.status).toBe(413);
    expect((await big.json()).error.code).toBe('payload_too_large');
    expect((await admin.get(`/api/v1/projects/${id}/media/usage/`)).body).toEqual(usage0);

    const asJpg = await upload(png, 'image/jpeg');
    expect(asJpg.status).toBe(201);
    const item = await asJpg.json();
    expect(item).toMatchObject({ shot_id: shots[0].id, source: 'upload', width: 90, height: 160, chosen: true });
    const file = await fetch(studio.url + item.url, { headers: { cookie: admin.cookie } });
    expect(file.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await file.arrayBuffer())).toEqual(png);
    expect((await imageStage(id)).output.images.find((i: { id: string }) => i.id === item.id).chosen).toBe(true);

    // The media route: strangers see nothing, Range gives part of it, and no path leaves the store.
    const stranger = await createUser(studio, admin, 'stranger-images@example.com');
    expect((await stranger.get(item.url)).status).toBe(404);
    const part = await fetch(studio.url + item.url, { headers: { cookie: admin.cookie, range: 'bytes=0-15' } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(png.subarray(0, 16));
    for (const bad of ['/api/v1/media/..%2F..%2Fetc%2Fpasswd', '/api/v1/media/../../package.json', `/api/v1/media/${item.media_id}%2F..%2F..`]) {
      const res = await admin.get(bad);
      expect(res.status, bad).toBe(404);
    }
  });

  it('characters are kept per project, proposed by the model from the story, and their look joins the prompts of the shots that name them', async () => {
    const { id } = await newProjectWithShots('characters', 4);
    const suggested = await admin.post(`/api/v1/projects/${id}/characters/suggest/`);
    expect(suggested.status, JSON.stringify(suggested.body)).toBe(200);
    // The story's people, each with a look to draw (the storyboard's 老人 and 女孩), from the model.
    expect(suggested.body).toMatchObject({ method: 'model', message: 'Proposed by fake llm' });
    const byName = new Map((suggested.body.characters as { name: string; look: string }[]).map((c) => [c.name, c.look]));
    expect([...byName.keys()]).toEqual(expect.arrayContaining(['老人', '女孩']));
    for (const look of byName.values()) expect(look.length).toBeGreaterThan(2);

    const put = await admin.put(`/api/v1/projects/${id}/characters/`, { characters: [{ name: '老人', look: '白发、深蓝毛衣' }] });
    expect(put.status).toBe(200);
    expect((await admin.get(`/api/v1/projects/${id}/characters/`)).body.characters).toEqual([{ name: '老人', look: '白发、深蓝毛衣' }]);
    expect((await admin.put(`/api/v1/projects/${id}/characters/`, { characters: [{ name: '', look: 'x' }] })).status).toBe(400);

    // With no language model at all, the names the storyboard repeats are offered, and the answer says so.
    const llms = ((await admin.get('/api/v1/models/providers/')).body as { id: string; provider_type: string; is_active: boolean }[]).filter((p) => p.provider_type === 'llm' && p.is_active);
    try {
      for (const p of llms) await admin.patch(`/api/v1/models/providers/${p.id}/`, { is_active: false });
      const names = await admin.post(`/api/v1/projects/${id}/characters/suggest/`);
      expect(names.status, JSON.stringify(names.body)).toBe(200);
      expect(names.body.method).toBe('names');
      expect(names.body.characters.map((c: { name: string }) => c.name)).toContain('老人');
    } finally {
      for (const p of llms) await admin.patch(`/api/v1/models/providers/${p.id}/`, { is_active: true });
    }
  });

  it('a character\'s chosen picture goes as the reference image with the shots that name it, to the providers that take one', async () => {
    const { id, shots } = await newProjectWithShots('reference', 4);
    const picture = await sharp({ create: { width: 64, height: 96, channels: 3, background: '#aa3322' } }).png().toBuffer();
    const uploaded = await fetch(`${studio.url}/api/v1/projects/${id}/characters/pictures/`, { method: 'POST', headers: { cookie: admin.cookie, 'content-type': 'image/png', origin: studio.url }, body: new Uint8Array(picture) });
    expect(uploaded.status).toBe(201);
    const { media_id } = await uploaded.json();
    const html = await fetch(`${studio.url}/api/v1/projects/${id}/characters/pictures/`, { method: 'POST', headers: { cookie: admin.cookie, 'content-type': 'image/png', origin: studio.url }, body: '<!doctype html><p>not a picture</p>' });
    expect(html.status).toBe(400);
    expect((await html.json()).error.details.fields.file).toBeTruthy();
    expect(sha(await download(`/api/v1/media/${media_id}`))).toBe(sha(picture));
    const saved = await admin.put(`/api/v1/projects/${id}/characters/`, { characters: [{ name: '老人', look: '白发、深蓝毛衣', image_media_id: media_id }] });
    expect(saved.status, JSON.stringify(saved.body)).toBe(200);
    expect(saved.body.characters[0].image_media_id).toBe(media_id);

    const naming = await Promise.all(shots.map(async (s) => (await admin.get(`/api/v1/projects/${id}/storyboards/`)).body.results.find((r: { id: string }) => r.id === s.id)));
    const names = (r: { scene_description: string; narration_text: string; image_prompt: string }) => `${r.scene_description}${r.narration_text}${r.image_prompt}`.includes('老人');
    expect(naming.some(names)).toBe(true);
    expect(naming.some((r) => !names(r))).toBe(true);

    const requestsOf = async (shape: (typeof SHAPES)[number]) => {
      const provider = await addProvider(shape, fake);
      const before = fake.stats.created.length;
      const seen = await follow(`${studio.url}/api/v1/runs/${await startImages(id, { input: {}, provider_id: provider })}/events`, { cookie: admin.cookie, timeoutMs: 60_000 });
      expect(seen.events.at(-1)!.data.type, JSON.stringify(seen.events.at(-1)!.data)).toBe('done');
      await admin.patch(`/api/v1/models/providers/${provider}/`, { is_active: false });
      const created = fake.stats.created.slice(before);
      expect(created).toHaveLength(4);
      return created;
    };
    // The prompt of a shot that names 老人 carries the look; exactly those requests carry the picture, byte for byte.
    for (const shape of [SHAPES[1], SHAPES[2]]) {
      const created = await requestsOf(shape);
      for (const c of created) {
        if (c.prompt.includes('老人：白发、深蓝毛衣')) expect(c.reference, `${shape.api_format}: ${c.prompt}`).toEqual({ sha256: sha(picture), mime: 'image/png', bytes: picture.length });
        else expect(c.reference, `${shape.api_format}: ${c.prompt}`).toBeNull();
      }
      expect(created.filter((c) => c.reference).length).toBe(naming.filter(names).length);
    }
    // The OpenAI shape takes no reference: nothing is sent, and the shots are still drawn.
    expect((await requestsOf(SHAPES[0])).every((c) => c.reference === null)).toBe(true);

    // One of the project's generated images can be the picture; clearing it sends none.
    const generated = (await imageStage(id)).output.images[0].media_id as string;
    expect((await admin.put(`/api/v1/projects/${id}/characters/`, { characters: [{ name: '老人', look: '白发、深蓝毛衣', image_media_id: generated }] })).status).toBe(200);
    const withGenerated = await requestsOf(SHAPES[1]);
    // A 720×1280 frame is larger than a reference needs: it goes as a JPEG of at most 1024 px.
    const reduced = await sharp(await download(`/api/v1/media/${generated}`)).resize(1024, 1024, { fit: 'inside', withoutEnlargement: true }).jpeg({ quality: 85 }).toBuffer();
    expect(withGenerated.filter((c) => c.reference)).toHaveLength(naming.filter(names).length);
    for (const c of withGenerated.filter((r) => r.reference)) expect(c.reference).toEqual({ sha256: sha(reduced), mime: 'image/jpeg', bytes: reduced.length });
    expect((await admin.put(`/api/v1/projects/${id}/characters/`, { characters: [{ name: '老人', look: '白发、深蓝毛衣', image_media_id: null }] })).status).toBe(200);
    expect((await requestsOf(SHAPES[1])).every((c) => c.reference === null)).toBe(true);
  });

  it.each([
    ['another project\'s image', 'other'],
    ['an id no media has', 'missing'],
    ['not a uuid', 'garbage'],
  ])('a character picture that is %s is refused, and the characters stay as they were', async (_what, kind) => {
    const mine = (await admin.post('/api/v1/projects/', { name: `pictures ${kind}`, original_topic: STORY })).body.id as string;
    const other = (await admin.post('/api/v1/projects/', { name: `elsewhere ${kind}`, original_topic: STORY })).body.id as string;
    const png = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#123456' } }).png().toBuffer();
    const uploaded = await fetch(`${studio.url}/api/v1/projects/${other}/characters/pictures/`, { method: 'POST', headers: { cookie: admin.cookie, 'content-type': 'image/png', origin: studio.url }, body: new Uint8Array(png) });
    const theirs = (await uploaded.json()).media_id as string;
    const before = [{ name: '老人', look: '白发' }];
    expect((await admin.put(`/api/v1/projects/${mine}/characters/`, { characters: before })).status).toBe(200);
    const ids: Record<string, string> = {
      other: theirs,
      missing: '00000000-0000-4000-8000-000000000000',
      garbage: 'not-a-media-id',
    };
    const refused = await admin.put(`/api/v1/projects/${mine}/characters/`, { characters: [{ name: '老人', look: '白发', image_media_id: ids[kind] }] });
    expect(refused.status).toBe(400);
    expect(Object.keys(refused.body.error.details.fields)).toEqual(['characters.0.image_media_id']);
    expect((await admin.get(`/api/v1/projects/${mine}/characters/`)).body.characters).toEqual(before);
  });
});

describe(`an image run killed with the server (${process.env.TEST_DB ?? 'pglite'})`, () => {
  it('is interrupted after restart, with the images it had finished kept', { timeout: 240_000 }, async () => {
    const llmFake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    const slow = await startFakeImage({ defaults: { taskMs: 1_200 } });
    const testDb = await createTestDatabase();
    const studioProcess = await spawnStudio(testDb);
    try {
      const base = studioProcess.base;
      const admin = new Client(base);
      expect((await admin.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password })).status).toBe(200);
      const llm = (await admin.post('/api/v1/models/providers/', { name: 'fake', api_url: llmFake.url, model_name: 'fake-model?ttft=5&tps=2000' })).body.id;
      const image = (await admin.post('/api/v1/models/providers/', { name: 'dash', provider_type: 'text2image', api_format: 'dashscope', api_url: slow.url, api_key: 'k', model_name: 'wan2.2-t2i-flash' })).body.id;
      const project = (await admin.post('/api/v1/projects/', { name: 'kill', original_topic: STORY })).body.id;
      const board = await admin.post(`/api/v1/projects/${project}/stages/storyboard/runs/`, { input: { shot_count: 8 }, provider_id: llm });
      await follow(`${base}/api/v1/runs/${board.body.id}/events`, { cookie: admin.cookie });
      // sharp comes with the first picture: a studio that has only written text has no libvips in memory.
      const libvipsLoaded = async () => (await readFile(`/proc/${studioProcess.child.pid}/maps`, 'utf8')).includes('libvips');
      expect(await libvipsLoaded()).toBe(false);
      const run = await admin.post(`/api/v1/projects/${project}/stages/image/runs/`, { input: {}, provider_id: image });
      expect(run.status).toBe(202);
      const before = await follow(`${base}/api/v1/runs/${run.body.id}/events`, { cookie: admin.cookie, stopWhen: (e) => ofType(e, 'image').length >= 2, timeoutMs: 30_000 });
      const finished = ofType(before.events, 'image').map((e) => e.data.image.media_id);
      expect(await libvipsLoaded()).toBe(true);
      await studioProcess.kill();
      await leasesExpired(testDb);

      const studio: TestStudio = await startStudio({}, testDb);
      try {
        const c = new Client(studio.url);
        await c.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password });
        expect((await c.get(`/api/v1/runs/${run.body.id}/`)).body.status).toBe('interrupted');
        const replay = await follow(`${studio.url}/api/v1/runs/${run.body.id}/events`, { cookie: c.cookie });
        const kept = ofType(replay.events, 'image').map((e) => e.data.image.media_id);
        // Every image sent before the kill is kept (two tasks finishing together may be saved in either order).
        expect(kept).toEqual(expect.arrayContaining(finished));
        expect(kept.length).toBeLessThan(8);
        expect(replay.events.at(-1)!.data).toMatchObject({ type: 'stage_update', status: 'interrupted' });
        for (const e of ofType(replay.events, 'image')) expect((await fetch(studio.url + e.data.image.url, { headers: { cookie: c.cookie } })).status).toBe(200);
      } finally {
        await studio.close();
      }
    } finally {
      await studioProcess.kill();
      await slow.close();
      await llmFake.close();
    }
  });
});
