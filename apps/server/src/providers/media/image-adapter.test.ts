import { createHash } from 'node:crypto';
import { startFakeImage, type FakeImageServer, type ImageRoute } from '@ai-story/fake-media/image/index.ts';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { fetchRemoteMedia, RemoteMediaError } from '../../media/fetch-remote.ts';
import { imageAdapterFor, type GeneratedImage, type ImageApiFormat, type ImageProviderConfig } from './image-adapter.ts';
import { MediaProviderError } from './errors.ts';

const KEY = 'sk-image-test-key';
let fake: FakeImageServer;

beforeAll(async () => {
  fake = await startFakeImage({ apiKey: KEY, defaults: { taskMs: 300 } });
});
afterAll(async () => {
  await fake.close();
});

interface Case {
  format: ImageApiFormat;
  model: string;
  route: ImageRoute;
  apiUrl: () => string;
}

const CASES: Case[] = [
  { format: 'openai', model: 'dall-e-3', route: 'openai.generations', apiUrl: () => `${fake.url}/v1` },
  { format: 'siliconflow', model: 'Kwai-Kolors/Kolors', route: 'siliconflow.generations', apiUrl: () => `${fake.url}/v1` },
  { format: 'dashscope', model: 'wanx2.1-t2i-turbo', route: 'dashscope.submit', apiUrl: () => fake.url },
];

function provider(c: Case, overrides: Partial<ImageProviderConfig> = {}): ImageProviderConfig {
  return { api_url: c.apiUrl(), api_key: KEY, model_name: c.model, timeout_s: 10, ...overrides };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function bytesOf(image: GeneratedImage, apiUrl: string): Promise<Buffer> {
  if ('b64' in image) return Buffer.from(image.b64, 'base64');
  const { bytes, contentType } = await fetchRemoteMedia(image.url, { allowHostOf: apiUrl, maxBytes: 20 * 1024 * 1024, signal: AbortSignal.timeout(10_000) });
  expect(contentType).toBe('image/png');
  return bytes;
}

async function rejection(p: Promise<unknown>): Promise<MediaProviderError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(MediaProviderError);
  return e as MediaProviderError;
}

const signal = () => AbortSignal.timeout(20_000);

describe.each(CASES)('$format adapter', (c) => {
  const adapter = imageAdapterFor(c.format);

  test('three shots give the images the vendor served, byte for byte', async () => {
    const shots = ['夜晚的灯塔', '清晨的海边', '森林里的猫'].map((s) => `${c.format} ${s}`);
    const got: string[] = [];
    for (const prompt of shots) {
      const result = await adapter.generate(provider(c), { prompt, width: 720, height: 1280, n: 1 }, { signal: signal() });
      expect(result.usage.images).toBe(1);
      expect(result.images).toHaveLength(1);
      got.push(sha256(await bytesOf(result.images[0], c.apiUrl())));
    }
    const served = fake.stats.served.filter((s) => shots.includes(s.prompt)).map((s) => s.sha256);
    expect(got).toEqual(served);
    expect(new Set(got).size).toBe(3);
  });

  test('a 429 is retried after Retry-After, then succeeds', async () => {
    const prompt = `${c.format} rate limited once [fake: rate_limit=1, retry_after_s=1]`;
    const before = fake.stats.requests[c.route];
    const result = await adapter.generate(provider(c), { prompt, width: 720, height: 1280, n: 1 }, { signal: signal() });
    expect(result.images).toHaveLength(1);
    expect(fake.stats.requests[c.route] - before).toBe(2);
  });

  test('a moderation refusal is a moderation error with the vendor’s words', async () => {
    const e = await rejection(adapter.generate(provider(c), { prompt: `${c.format} refused [fake: moderation]`, width: 720, height: 1280, n: 1 }, { signal: signal() }));
    expect(e.code).toBe('moderation');
    expect(e.retryable).toBe(false);
    expect(e.vendorMessage).toMatch(/safety system|sensitive|inappropriate/i);
  });

  test('a wrong key is an auth error, not retried', async () => {
    const before = fake.stats.requests[c.route];
    const e = await rejection(adapter.generate(provider(c, { api_key: 'sk-wrong' }), { prompt: 'x', width: 720, height: 1280, n: 1 }, { signal: signal() }));
    expect(e.code).toBe('auth');
    expect(fake.stats.requests[c.route] - before).toBe(1);
  });

  test('testConnection accepts the right key and names a wrong one, without creating an image', async () => {
    const before = fake.stats.requests[c.route];
    const ok = await adapter.testConnection(provider(c));
    expect(ok).toMatchObject({ ok: true, code: 'ok' });
    const bad = await adapter.testConnection(provider(c, { api_key: 'sk-wrong' }));
    expect(bad.ok).toBe(false);
    expect(bad.code).toBe('auth');
    expect(fake.stats.requests[c.route]).toBe(before);
  });

  test('an image URL works at once and fails after it expires', async () => {
    const result = await adapter.generate(provider(c), { prompt: `${c.format} short-lived [fake: url_ttl_ms=400]`, width: 720, height: 1280, n: 1 }, { signal: signal() });
    const image = result.images[0];
    if (!('url' in image)) throw new Error('expected a URL');
    await expect(bytesOf(image, c.apiUrl())).resolves.toBeInstanceOf(Buffer);
    await new Promise((r) => setTimeout(r, 500));
    const e = await fetchRemoteMedia(image.url, { allowHostOf: c.apiUrl(), maxBytes: 1e7, signal: signal() }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(RemoteMediaError);
    expect((e as RemoteMediaError).code).toBe('http_status');
    expect((e as RemoteMediaError).status).toBe(403);
  });

  test.each(['html-as-png', 'html'])('a URL serving HTML (%s) is refused', async (wrong) => {
    const result = await adapter.generate(provider(c), { prompt: `${c.format} login page [fake: wrong_content=${wrong}]`, width: 720, height: 1280, n: 1 }, { signal: signal() });
    const image = result.images[0];
    if (!('url' in image)) throw new Error('expected a URL');
    const e = await fetchRemoteMedia(image.url, { allowHostOf: c.apiUrl(), maxBytes: 1e7, signal: signal() }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(RemoteMediaError);
    expect((e as RemoteMediaError).code).toBe('not_media');
    expect((e as RemoteMediaError).message).toMatch(/web page/);
  });
});

describe('openai adapter details', () => {
  const c = CASES[0];
  test('dall-e-3 makes one image per request, at its nearest size', async () => {
    const before = fake.stats.requests['openai.generations'];
    const result = await imageAdapterFor('openai').generate(provider(c), { prompt: 'two of them', width: 720, height: 1280, n: 2 }, { signal: signal() });
    expect(result.images).toHaveLength(2);
    expect(fake.stats.requests['openai.generations'] - before).toBe(2);
    const sharp = (await import('sharp')).default;
    const meta = await sharp(await bytesOf(result.images[0], c.apiUrl())).metadata();
    expect([meta.width, meta.height]).toEqual([1024, 1792]);
  });

  test('gpt-image answers base64, and those bytes are what was served', async () => {
    const prompt = 'inline please';
    const result = await imageAdapterFor('openai').generate(provider({ ...c, model: 'gpt-image-1' }), { prompt, width: 720, height: 1280, n: 1 }, { signal: signal() });
    const image = result.images[0];
    expect('b64' in image).toBe(true);
    const served = fake.stats.served.filter((s) => s.prompt === prompt);
    expect(served).toHaveLength(1);
    expect(served[0].via).toBe('b64');
    expect(sha256(await bytesOf(image, c.apiUrl()))).toBe(served[0].sha256);
  });
});

describe('dashscope tasks', () => {
  const c = CASES[2];
  const adapter = imageAdapterFor('dashscope');

  test('reports queued then running while the task runs', async () => {
    const statuses: string[] = [];
    await adapter.generate(provider(c), { prompt: 'slow task [fake: task_ms=1500]', width: 720, height: 1280, n: 1 }, { signal: signal(), onStatus: (s) => statuses.push(s.status) });
    expect(statuses).toEqual(['queued', 'running']);
  });

  test('a task that fails mid-poll is an upstream error with the vendor’s message', async () => {
    const e = await rejection(adapter.generate(provider(c), { prompt: 'doomed [fake: fail_mid_task, task_ms=600]', width: 720, height: 1280, n: 1 }, { signal: signal() }));
    expect(e.code).toBe('upstream');
    expect(e.vendorCode).toBe('InternalError.Algo');
    expect(e.vendorMessage).toMatch(/failed while generating/);
  });

  test('aborting while polling stops at once, and no poll follows', async () => {
    const controller = new AbortController();
    const polls = () => fake.stats.requests['dashscope.task'];
    const before = polls();
    const running = adapter.generate(provider(c), { prompt: 'never waited for [fake: task_ms=60000]', width: 720, height: 1280, n: 1 }, {
      signal: controller.signal,
      // The first answer (queued) proves polling has started; abort while waiting for the next poll
      // (later in this turn of the event loop: the wait has begun, and no poll timer can come first).
      onStatus: () => setImmediate(() => controller.abort()),
    });
    const e = await rejection(running);
    expect(e.code).toBe('cancelled');
    const atAbort = polls();
    expect(atAbort - before).toBe(1);
    // Longer than the next several poll intervals.
    await new Promise((r) => setTimeout(r, 1500));
    expect(polls()).toBe(atAbort);
  });

  test('a request without the async header is refused the way the vendor refuses it', async () => {
    const res = await fetch(`${fake.url}/api/v1/services/aigc/text2image/image-synthesis`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'wanx-v1', input: { prompt: 'x' } }),
    });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ code: 'AccessDenied' });
  });
});

test('an unknown api_format is refused by name', () => {
  expect(() => imageAdapterFor('midjourney')).toThrow(/midjourney/);
});
