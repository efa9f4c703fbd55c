import { startFakeImage, type FakeImageServer } from '@ai-story/fake-media/image/index.ts';
import { startFakeSpeech, type FakeSpeechServer } from '@ai-story/fake-media/speech/server.ts';
import { startFakeVideo, type FakeVideoServer } from '@ai-story/fake-media/video/server.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, setupAdmin, startStudio, TEST_DB, type TestStudio } from './helpers.ts';
import { follow } from './sse-client.ts';

const IMAGE_KEY = 'sk-image-right';
const imageCreates = (f: FakeImageServer) => f.stats.requests['openai.generations'] + f.stats.requests['siliconflow.generations'] + f.stats.requests['dashscope.submit'];

describe(`media providers: test button and usage (${TEST_DB})`, () => {
  let image: FakeImageServer;
  let speech: FakeSpeechServer;
  let video: FakeVideoServer;
  let studio: TestStudio;
  let admin: Client;

  beforeAll(async () => {
    [image, speech, video] = await Promise.all([
      startFakeImage({ apiKey: IMAGE_KEY }),
      startFakeSpeech({ apiKey: 'sk-speech-right' }),
      // Small clips: the test button never asks for one, prewarming is only start-up time.
      startFakeVideo({ kling: { accessKey: 'ak-right', secretKey: 'sk-right' }, prewarm: [] }),
    ]);
    studio = await startStudio();
    admin = await setupAdmin(studio);
  });
  afterAll(async () => {
    await studio?.close();
    await Promise.all([image?.close(), speech?.close(), video?.close()]);
  });

  const create = async (body: Record<string, unknown>) => {
    const res = await admin.post('/api/v1/models/providers/', { name: `${body.provider_type} ${Math.random().toString(36).slice(2, 6)}`, ...body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as string;
  };
  const test = async (id: string) => {
    const res = await admin.post(`/api/v1/models/providers/${id}/test/`, {});
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    // The result is kept as the provider's last test, as for LLM providers.
    const stored = (await admin.get(`/api/v1/models/providers/${id}/`)).body.last_test;
    expect(stored).toMatchObject({ ok: res.body.ok, message: res.body.message, code: res.body.code });
    return res.body as { ok: boolean; latency_ms: number; message: string; code?: string };
  };

  describe('the test button checks the credentials without a billable job', () => {
    it('text2image (OpenAI shape): the right key passes, a wrong one is refused in words', async () => {
      const base = { provider_type: 'text2image', api_format: 'openai', api_url: `${image.url}/v1`, model_name: 'dall-e-3' };
      const good = await test(await create({ ...base, api_key: IMAGE_KEY }));
      expect(good).toMatchObject({ ok: true, code: 'media_ok' });
      expect(good.latency_ms).toBeGreaterThanOrEqual(0);
      const bad = await test(await create({ ...base, api_key: 'sk-image-wrong' }));
      expect(bad).toMatchObject({ ok: false, code: 'key_rejected' });
      expect(bad.message).toMatch(/key|auth|401/i);
      expect(image.stats.requests.models).toBe(2);
      expect(imageCreates(image)).toBe(0);
      expect(image.stats.served).toHaveLength(0);
    });

    it('tts (OpenAI speech): the right key passes, a wrong one is refused in words', async () => {
      const base = { provider_type: 'tts', api_format: 'openai_speech', api_url: speech.url, model_name: 'tts-1' };
      expect(await test(await create({ ...base, api_key: 'sk-speech-right' }))).toMatchObject({ ok: true, code: 'media_ok' });
      const bad = await test(await create({ ...base, api_key: 'sk-speech-wrong' }));
      expect(bad).toMatchObject({ ok: false, code: 'key_rejected' });
      expect(bad.message).toMatch(/API key was rejected/);
      expect(speech.stats.requests).toBe(2);
      expect(speech.stats.synthesized).toBe(0);
      expect(speech.stats.characters).toBe(0);
    });

    it('image2video (Kling, AccessKey + SecretKey): the right pair passes, a wrong secret is refused in words', async () => {
      const base = { provider_type: 'image2video', api_format: 'kling', api_url: video.url, model_name: 'kling-v1', api_key: 'ak-right' };
      expect(await test(await create({ ...base, api_secret: 'sk-right' }))).toMatchObject({ ok: true, code: 'media_ok' });
      const bad = await test(await create({ ...base, api_secret: 'sk-wrong' }));
      expect(bad).toMatchObject({ ok: false, code: 'key_rejected' });
      expect(bad.message).toMatch(/auth|key|secret|401|signature/i);
      // A provider with no secret stored is told so before any request.
      const requestsBefore = video.stats.requests;
      const missing = await test(await create(base));
      expect(missing).toMatchObject({ ok: false, code: 'key_rejected' });
      expect(video.stats.requests).toBe(requestsBefore);
      expect(video.stats.creates).toBe(0);
      expect(video.tasks.size).toBe(0);
    });
  });

  describe('media runs count their units and cost on the provider', () => {
    const SHOTS = ['灯塔亮了。', '女孩笑了，钟又走了。'];
    const projectWithShots = async (name: string) => {
      const id = (await admin.post('/api/v1/projects/', { name, original_topic: SHOTS.join('') })).body.id as string;
      for (const text of SHOTS) expect((await admin.post(`/api/v1/projects/${id}/storyboards/`, { narration_text: text, scene_description: text, duration_seconds: 2 })).status).toBe(201);
      return id;
    };
    const run = async (projectId: string, stage: string, body: Record<string, unknown>) => {
      const res = await admin.post(`/api/v1/projects/${projectId}/stages/${stage}/runs/`, body);
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      const seen = await follow(`${studio.url}/api/v1/runs/${res.body.id}/events`, { cookie: admin.cookie, timeoutMs: 90_000 });
      const done = seen.events.at(-1)!.data;
      expect(done.type, JSON.stringify(done)).toBe('done');
      expect(done.output.failed_shot_ids).toEqual([]);
      return done;
    };
    const usageOf = async (id: string) => {
      const res = await admin.get(`/api/v1/models/providers/${id}/usage/`);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body;
    };

    it('an image run on a priced provider: one call per shot, images as units, price × images as cost', async () => {
      const provider = await create({
        provider_type: 'text2image',
        api_format: 'openai',
        api_url: `${image.url}/v1`,
        api_key: IMAGE_KEY,
        model_name: 'doubao-seedream-3-0-t2i',
        price_per_unit: 0.04,
      });
      expect((await usageOf(provider)).totals).toMatchObject({ calls: 0, cost: 0 });
      const project = await projectWithShots('priced images');
      const servedBefore = image.stats.served.length;
      const done = await run(project, 'image', { input: { candidates: 2 }, provider_id: provider });
      const images = image.stats.served.length - servedBefore;
      expect(images).toBe(SHOTS.length * 2);
      expect(done.run.usage.cost).toBeCloseTo(images * 0.04, 9);

      const usage = await usageOf(provider);
      expect(usage.unit).toBe('images');
      expect(usage.totals).toMatchObject({ calls: SHOTS.length, units: images, failures: 0 });
      expect(usage.totals.cost).toBeCloseTo(images * 0.04, 9);
      expect(usage.days).toHaveLength(1);
      expect(usage.days[0]).toMatchObject({ calls: SHOTS.length, units: images });
      expect(usage.days[0].cost).toBeCloseTo(images * 0.04, 9);
    });

    it("a media provider's rate_limit_rpm holds as an LLM provider's does: the call over it is not made, and the shot says why", async () => {
      const limited = await create({ name: 'one image a minute', provider_type: 'text2image', api_format: 'openai', api_url: `${image.url}/v1`, api_key: IMAGE_KEY, model_name: 'doubao-seedream-3-0-t2i', rate_limit_rpm: 1 });
      const project = await projectWithShots('limited images');
      const servedBefore = image.stats.served.length;
      const res = await admin.post(`/api/v1/projects/${project}/stages/image/runs/`, { input: { candidates: 1 }, provider_id: limited });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      const seen = await follow(`${studio.url}/api/v1/runs/${res.body.id}/events`, { cookie: admin.cookie, timeoutMs: 90_000 });
      const done = seen.events.at(-1)!.data;
      expect(done.type, JSON.stringify(done)).toBe('done');
      // One shot got its image; the other was refused here, before any request reached the vendor.
      expect(image.stats.served.length - servedBefore).toBe(1);
      expect(done.output.failed_shot_ids).toHaveLength(1);
      const failedTask = seen.events.filter((e) => e.data.type === 'task' && e.data.status === 'failed').at(-1)!.data;
      expect(failedTask.message).toContain('over its limit of 1 requests per minute');
      // Usage counts the call that was made, not the refusal.
      expect((await usageOf(limited)).totals).toMatchObject({ calls: 1, failures: 0 });
    });

    it('a narration run on a priced speech provider: characters as units, cost per 1,000 characters', async () => {
      const provider = await create({ provider_type: 'tts', api_format: 'openai_speech', api_url: speech.url, api_key: 'sk-speech-right', model_name: 'tts-1', price_per_unit: 0.015 });
      const project = await projectWithShots('priced speech');
      const before = { ...speech.stats };
      // One call per sentence: the first fails once (500) and is retried — a failure with no units.
      speech.knobs.serverErrorTimes = 1;
      const done = await run(project, 'narration', { input: {}, provider_id: provider });
      const characters = speech.stats.characters - before.characters;
      const calls = speech.stats.requests - before.requests;
      expect(characters).toBeGreaterThan(0);
      expect(calls).toBe(speech.stats.synthesized - before.synthesized + 1);

      const usage = await usageOf(provider);
      expect(usage.unit).toBe('characters');
      expect(usage.totals).toMatchObject({ calls, units: characters, failures: 1 });
      expect(usage.totals.cost).toBeCloseTo((characters * 0.015) / 1000, 9);
      // The run's own usage and each shot's item carry the same cost.
      expect(done.run.usage.cost).toBeCloseTo((characters * 0.015) / 1000, 9);
      const items = done.output.narration as { characters: number; cost: number }[];
      expect(items.reduce((n, i) => n + i.characters, 0)).toBe(characters);
    });
  });
});
