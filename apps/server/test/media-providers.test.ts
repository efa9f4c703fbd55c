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
      expect(good).toMatchObject({ ok: true, code: 'ok' });
      expect(good.latency_ms).toBeGreaterThanOrEqual(0);
      const bad = await test(await create({ ...base, api_key: 'sk-image-wrong' }));
      expect(bad).toMatchObject({ ok: false, code: 'auth' });
      expect(bad.message).toMatch(/key|auth|401/i);
      expect(image.stats.requests.models).toBe(2);
      expect(imageCreates(image)).toBe(0);
      expect(image.stats.served).toHaveLength(0);
    });

    it('tts (OpenAI speech): the right key passes, a wrong one is refused in words', async () => {
      const base = { provider_type: 'tts', api_format: 'openai_speech', api_url: speech.url, model_name: 'tts-1' };
      expect(await test(await create({ ...base, api_key: 'sk-speech-right' }))).toMatchObject({ ok: true, code: 'ok' });
      const bad = await test(await create({ ...base, api_key: 'sk-speech-wrong' }));
      expect(bad).toMatchObject({ ok: false, code: 'auth' });
      expect(bad.message).toMatch(/API key was rejected/);
      expect(speech.stats.requests).toBe(2);
      expect(speech.stats.synthesized).toBe(0);
      expect(speech.stats.characters).toBe(0);
    });

    it('image2video (Kling, AccessKey + SecretKey): the right pair passes, a wrong secret is refused in words', async () => {
      const base = { provider_type: 'image2video', api_format: 'kling', api_url: video.url, model_name: 'kling-v1', api_key: 'ak-right' };
      expect(await test(await create({ ...base, api_secret: 'sk-right' }))).toMatchObject({ ok: true, code: 'ok' });
      const bad = await test(await create({ ...base, api_secret: 'sk-wrong' }));
      expect(bad).toMatchObject({ ok: false, code: 'auth' });
      expect(bad.message).toMatch(/auth|key|secret|401|signature/i);
      // A provider with no secret stored is told so before any request.
      const requestsBefore = video.stats.requests;
      const missing = await test(await create(base));
      expect(missing).toMatchObject({ ok: false, code: 'auth' });
      expect(video.stats.requests).toBe(requestsBefore);
      expect(video.stats.creates).toBe(0);
      expect(video.tasks.size).toBe(0);
    });
  });
});
