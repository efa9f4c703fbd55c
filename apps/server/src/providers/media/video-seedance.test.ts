import { startFakeVideo, type FakeVideoServer } from '@ai-story/fake-media/video/server.ts';
import { DEFAULT_VIDEO_KNOBS } from '@ai-story/fake-media/video/tasks.ts';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { MediaProviderError } from './errors.ts';
import { videoAdapterFor, vendorDurationFor, type VideoProvider, type VideoRequest } from './video-adapter.ts';

let fake: FakeVideoServer;
let provider: VideoProvider;
const seedance = videoAdapterFor('seedance');

beforeAll(async () => {
  fake = await startFakeVideo({ seedanceApiKey: 'ark-test', prewarm: [5] });
  // Pasted with the version path, as the Ark console shows it.
  provider = { api_url: `${fake.url}/api/v3`, api_key: 'ark-test', model_name: 'doubao-seedance-1-0-lite-i2v-250428', timeout_s: 30 };
});
afterAll(() => fake.close());
beforeEach(() => {
  // Running long enough that a 20 ms poll sees it even on a busy machine (a stall of 80 ms skipped it).
  Object.assign(fake.knobs, DEFAULT_VIDEO_KNOBS, { queuedMs: 40, runningMs: 600 });
});

const request = (overrides: Partial<VideoRequest> = {}): VideoRequest => ({
  image_url: 'https://images.example/shot-2.jpg',
  prompt: '雨夜的街道，霓虹灯倒映在水面',
  duration_s: 4,
  aspect_ratio: '9:16',
  movement: { movement_type: 'static', params: { intensity: 0.5 } },
  ...overrides,
});
const opts = () => ({ signal: new AbortController().signal, pollIntervalMs: 20 });
const lastTask = () => [...fake.tasks.values()].at(-1)!;

async function failure(promise: Promise<unknown>): Promise<MediaProviderError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MediaProviderError);
  return err as MediaProviderError;
}

describe('Seedance image-to-video adapter', () => {
  test('a static shot asks for a fixed camera; ratio, duration and resolution are parsed by the vendor', async () => {
    const result = await seedance.generate(provider, request(), opts());
    const task = lastTask();
    expect(task.params).toEqual({ ratio: '9:16', duration: '5', camerafixed: 'true', resolution: '720p' });
    expect(task.prompt).toBe('雨夜的街道，霓虹灯倒映在水面');
    expect(task.imageRoles).toEqual(['first_frame']);
    expect(result).toMatchObject({ vendor_duration_s: 5, usage: { seconds: 5 } });
  });

  test('a moving shot leaves the camera free and says the movement in words', async () => {
    await seedance.generate(provider, request({ duration_s: 7.5, aspect_ratio: '16:9', movement: { movement_type: 'pan_left', params: { intensity: 0.9 } } }), opts());
    const task = lastTask();
    expect(task.params).toMatchObject({ ratio: '16:9', duration: '10', camerafixed: 'false' });
    expect(task.prompt).toContain('pans to the left, strongly');
    // The simulator renders the ratio it was asked for.
    expect([task.width, task.height]).toEqual([640, 360]);
  });

  test('the vendor duration is the smallest offered that covers the shot, at most 10 s', () => {
    expect([1, 5, 5.01, 9.9, 10, 14].map(vendorDurationFor)).toEqual([5, 5, 10, 10, 10, 10]);
  });

  test('a base64 image goes as a data URL with its type', async () => {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0]).toString('base64');
    await seedance.generate(provider, request({ image_url: undefined, image_b64: png }), opts());
    const content = lastTask().body.content as { type: string; image_url?: { url: string } }[];
    expect(content.find((c) => c.type === 'image_url')?.image_url?.url).toBe(`data:image/png;base64,${png}`);
  });

  test('polls to success and hands back a real MP4 URL', async () => {
    const statuses: string[] = [];
    const result = await seedance.generate(provider, request(), { ...opts(), onStatus: (s) => statuses.push(s.status) });
    expect(statuses).toEqual(['queued', 'running']);
    const clip = await fetch(result.url);
    expect(clip.status).toBe(200);
    expect(Buffer.from(await clip.arrayBuffer()).subarray(4, 8).toString('latin1')).toBe('ftyp');
  });

  test('a wrong key is an auth error; testConnection with the right one creates no task', async () => {
    const err = await failure(seedance.generate({ ...provider, api_key: 'wrong' }, request(), opts()));
    expect(err.code).toBe('auth');
    expect(await seedance.testConnection({ ...provider, api_key: 'wrong' })).toMatchObject({ ok: false, code: 'auth' });
    const tasks = fake.tasks.size;
    expect(await seedance.testConnection(provider)).toMatchObject({ ok: true });
    expect(fake.tasks.size).toBe(tasks);
  });

  test('a wrong API URL is not mistaken for good credentials', async () => {
    const result = await seedance.testConnection({ ...provider, api_url: `${fake.url}/not-ark` });
    expect(result).toMatchObject({ ok: false, code: 'bad_response' });
  });

  test('a task failing mid-way carries the vendor message as a moderation error', async () => {
    fake.knobs.failTasks = 1;
    fake.knobs.failMessage = 'The output video may contain sensitive information.';
    const err = await failure(seedance.generate(provider, request(), opts()));
    expect(err).toMatchObject({ code: 'moderation', retryable: false, vendorMessage: 'The output video may contain sensitive information.' });
  });

  test('a 500 at create is retried, then the task succeeds', async () => {
    fake.knobs.createServerErrorTimes = 1;
    const errorsBefore = fake.stats.byStatus[500] ?? 0;
    const result = await seedance.generate(provider, request(), opts());
    expect(result.url).toMatch(/\.mp4/);
    expect(fake.stats.byStatus[500]).toBe(errorsBefore + 1);
  });

  test('a 429 that keeps coming gives up with rate_limited after a bounded number of tries', async () => {
    fake.knobs.createRateLimitTimes = 100;
    fake.knobs.retryAfterS = 0;
    const before = fake.stats.byStatus[429] ?? 0;
    const err = await failure(seedance.generate(provider, request(), opts()));
    expect(err).toMatchObject({ code: 'rate_limited', retryable: true, retryAfterMs: 0 });
    expect(fake.stats.byStatus[429] - before).toBe(4);
  });
});
