import { startFakeVideo, type FakeVideoServer } from '@ai-story/fake-media/video/server.ts';
import { DEFAULT_VIDEO_KNOBS } from '@ai-story/fake-media/video/tasks.ts';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { MediaProviderError } from './errors.ts';
import { videoAdapterFor, type MovementType, type VideoProvider, type VideoRequest } from './video-adapter.ts';

let fake: FakeVideoServer;
let provider: VideoProvider;
const kling = videoAdapterFor('kling');

beforeAll(async () => {
  fake = await startFakeVideo({ kling: { accessKey: 'ak-test', secretKey: 'sk-test' } });
  provider = { api_url: fake.url, api_key: 'ak-test', api_secret: 'sk-test', model_name: 'kling-v1', timeout_s: 30 };
});
afterAll(() => fake.close());
beforeEach(() => {
  // Running long enough that a 20 ms poll sees it even on a busy machine (a stall of 80 ms skipped it).
  Object.assign(fake.knobs, DEFAULT_VIDEO_KNOBS, { queuedMs: 40, runningMs: 600 });
});

const image = 'https://images.example/shot-1.png';
const request = (overrides: Partial<VideoRequest> = {}): VideoRequest => ({
  image_url: image,
  prompt: '一只猫在窗台上',
  duration_s: 3.2,
  aspect_ratio: '9:16',
  movement: { movement_type: 'zoom_in', params: { intensity: 0.5 } },
  ...overrides,
});
const opts = (extra: Partial<Parameters<typeof kling.generate>[2]> = {}) => ({ signal: new AbortController().signal, pollIntervalMs: 20, ...extra });

/** The task the simulator recorded for the last create. */
const lastTask = () => [...fake.tasks.values()].at(-1)!;

async function failure(promise: Promise<unknown>): Promise<MediaProviderError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MediaProviderError);
  return err as MediaProviderError;
}

describe('Kling image-to-video adapter', () => {
  test('a JWT signed with the SecretKey is accepted; testConnection creates no task', async () => {
    const before = fake.tasks.size;
    const result = await kling.testConnection(provider);
    expect(result).toMatchObject({ ok: true });
    expect(fake.tasks.size).toBe(before);
  });

  test('a wrong SecretKey is an auth error, both in testConnection and generate', async () => {
    const wrong = { ...provider, api_secret: 'not-the-secret' };
    const result = await kling.testConnection(wrong);
    expect(result).toMatchObject({ ok: false, code: 'auth' });
    const err = await failure(kling.generate(wrong, request(), opts()));
    expect(err.code).toBe('auth');
    expect(err.retryable).toBe(false);
    expect(err.vendorMessage).toBe('Authentication failed');
  });

  test('a missing SecretKey is said plainly, before any request', async () => {
    const requests = fake.stats.requests;
    expect(await kling.testConnection({ ...provider, api_secret: undefined })).toMatchObject({ ok: false, code: 'auth' });
    expect(fake.stats.requests).toBe(requests);
  });

  test.each<[MovementType, Record<string, number> | null]>([
    ['static', null],
    ['zoom_in', { zoom: -5 }],
    ['zoom_out', { zoom: 5 }],
    ['pan_left', { horizontal: -5 }],
    ['pan_right', { horizontal: 5 }],
    ['tilt_up', { vertical: 5 }],
    ['tilt_down', { vertical: -5 }],
    ['dolly_in', { zoom: -5 }],
    ['dolly_out', { zoom: 5 }],
  ])('%s reaches Kling as camera_control %j', async (movement_type, nonZero) => {
    await kling.generate(provider, request({ movement: { movement_type, params: { intensity: 0.5 } } }), opts());
    const task = lastTask();
    if (nonZero === null) {
      expect(task.camera_control).toBeNull();
      expect(task.prompt).toMatch(/static camera/);
    } else {
      expect(task.camera_control).toEqual({ type: 'simple', config: { horizontal: 0, vertical: 0, pan: 0, tilt: 0, roll: 0, zoom: 0, ...nonZero } });
    }
  });

  test('intensity scales the one field, from 1 to 10', async () => {
    await kling.generate(provider, request({ movement: { movement_type: 'pan_right', params: { intensity: 1 } } }), opts());
    expect((lastTask().camera_control as { config: { horizontal: number } }).config.horizontal).toBe(10);
    await kling.generate(provider, request({ movement: { movement_type: 'pan_right', params: { intensity: 0 } } }), opts());
    expect((lastTask().camera_control as { config: { horizontal: number } }).config.horizontal).toBe(1);
  });

  test('models and durations without camera_control get the movement in words instead', async () => {
    await kling.generate({ ...provider, model_name: 'kling-v1-6' }, request({ movement: { movement_type: 'tilt_up', params: { intensity: 0.5 } } }), opts());
    expect(lastTask().camera_control).toBeNull();
    expect(lastTask().prompt).toContain('tilts up');
    // A 7 s shot needs the 10 s clip, which has no camera_control even on kling-v1.
    await kling.generate(provider, request({ duration_s: 7, movement: { movement_type: 'pan_left', params: { intensity: 0.5 } } }), opts());
    expect(lastTask().body.duration).toBe('10');
    expect(lastTask().camera_control).toBeNull();
    expect(lastTask().prompt).toContain('pans to the left');
  });

  test('polls through queued and running to a real, downloadable clip of the vendor duration', async () => {
    const statuses: string[] = [];
    const result = await kling.generate(provider, request(), opts({ onStatus: (s) => statuses.push(s.status) }));
    expect(statuses).toEqual(['queued', 'running']);
    expect(result.vendor_duration_s).toBe(5);
    expect(result.usage).toEqual({ seconds: 5 });
    expect(lastTask().body).toMatchObject({ model_name: 'kling-v1', duration: '5', mode: 'std', image });
    const clip = await fetch(result.url);
    expect(clip.headers.get('content-type')).toBe('video/mp4');
    const bytes = Buffer.from(await clip.arrayBuffer());
    expect(bytes.subarray(4, 8).toString('latin1')).toBe('ftyp');
  });

  test('base64 images are sent without the data: prefix Kling refuses', async () => {
    const b64 = Buffer.from('not really a png').toString('base64');
    await kling.generate(provider, request({ image_url: undefined, image_b64: `data:image/png;base64,${b64}` }), opts());
    expect(lastTask().body.image).toBe(b64);
  });

  test('a task that fails mid-way rejects with the vendor message', async () => {
    fake.knobs.failTasks = 1;
    fake.knobs.failMessage = 'Failure to pass the risk control system';
    const err = await failure(kling.generate(provider, request(), opts()));
    expect(err.code).toBe('moderation');
    expect(err.vendorMessage).toBe('Failure to pass the risk control system');

    fake.knobs.failTasks = 1;
    fake.knobs.failMessage = 'Internal generation error';
    const other = await failure(kling.generate(provider, request(), opts()));
    expect(other).toMatchObject({ code: 'upstream', retryable: true, vendorMessage: 'Internal generation error' });
  });

  test('the result URL works at once and is refused after its lifetime', async () => {
    fake.knobs.urlTtlMs = 800;
    const { url } = await kling.generate(provider, request(), opts());
    expect((await fetch(url)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 900));
    const late = await fetch(url);
    expect([403, 404]).toContain(late.status);
  });

  test('a 429 at create is retried (Retry-After honoured) and then succeeds', async () => {
    fake.knobs.createRateLimitTimes = 1;
    fake.knobs.retryAfterS = 0;
    const before = { created: fake.stats.creates, limited: fake.stats.byStatus[429] ?? 0 };
    const result = await kling.generate(provider, request(), opts());
    expect(result.url).toMatch(/\.mp4/);
    expect(fake.stats.byStatus[429]).toBe(before.limited + 1);
    expect(fake.stats.creates).toBe(before.created + 1);
  });

  test('abort stops polling at once: no request after the one in flight', async () => {
    fake.knobs.queuedMs = 60_000;
    const controller = new AbortController();
    const pollsBefore = fake.stats.polls;
    const generating = kling.generate(provider, request(), { signal: controller.signal, pollIntervalMs: 20 });
    // Wait until it is polling, then abort.
    while (fake.stats.polls < pollsBefore + 3) await new Promise((resolve) => setTimeout(resolve, 10));
    controller.abort();
    const atAbort = fake.stats.requests;
    const err = await failure(generating);
    expect(err.code).toBe('cancelled');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(fake.stats.requests - atAbort).toBeLessThanOrEqual(1);
    // Long enough for ten more polls at 20 ms had it kept going.
    const settled = fake.stats.requests;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(fake.stats.requests).toBe(settled);
  });

  test('the overall timeout ends a task that never finishes', async () => {
    fake.knobs.queuedMs = 60_000;
    const err = await failure(kling.generate({ ...provider, timeout_s: 0.3 }, request(), opts()));
    expect(err).toMatchObject({ code: 'timeout', retryable: true });
  });

  test('an HTML page where JSON was expected is a bad response, not a crash', async () => {
    fake.knobs.htmlAnswerTimes = 1;
    const err = await failure(kling.generate(provider, request(), opts()));
    expect(err.code).toBe('bad_response');
    expect(err.message).toContain('text/html');
  });
});
