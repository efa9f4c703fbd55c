import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startFakeLlm } from '@ai-story/fake-llm';
import { startFakeVideo, type FakeVideoServer } from '@ai-story/fake-media/video/server.ts';
import { DEFAULT_VIDEO_KNOBS } from '@ai-story/fake-media/video/tasks.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegInvocationCount, findMediaTools, liveMediaProcessCount, probe } from '../src/media/ffmpeg.ts';
import { testMediaStage } from './fixtures/test-media-stage.ts';
import { ADMIN, Client, setupAdmin, startStudio, type TestStudio } from './helpers.ts';
import { follow, type ReceivedEvent } from './sse-client.ts';

const STORY = '雨夜。一只橘猫在街角发抖。小女孩撑着红伞走来。她蹲下，把猫抱进怀里。第二天，阳光照进窗台。';
const tools = findMediaTools({})!;
const ofType = (events: ReceivedEvent[], type: string) => events.filter((e) => e.data.type === type);

/** ffmpeg processes that are children of this test process (the studio runs in it). */
const ffmpegChildren = () => {
  try {
    return execFileSync('pgrep', ['-P', String(process.pid), '-x', 'ffmpeg'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).length;
  } catch {
    return 0; // pgrep exits 1 when nothing matches
  }
};

/** Every file under the media store, recursively (scratch files included). */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

describe(`the video stage: clips per shot (${process.env.TEST_DB ?? 'pglite'})`, { timeout: 90_000 }, () => {
  let llmFake: Awaited<ReturnType<typeof startFakeLlm>>;
  let videoFake: FakeVideoServer;
  let studio: TestStudio;
  let admin: Client;
  let llm: string;
  let scratch: string;

  const run = async (projectId: string, stage: string, input: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => {
    const res = await admin.post(`/api/v1/projects/${projectId}/stages/${stage}/runs/`, { input, ...extra });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body.id as string;
  };
  const followRun = (runId: string, stopWhen?: (e: ReceivedEvent[]) => boolean) =>
    follow(`${studio.url}/api/v1/runs/${runId}/events`, { cookie: admin.cookie, timeoutMs: 60_000, stopWhen });
  const videoStage = async (projectId: string) =>
    (await admin.get(`/api/v1/projects/${projectId}/stages/`)).body.find((s: { stage_type: string }) => s.stage_type === 'video');

  /** Storyboard and camera on the simulated LLM, images from the test media stage, shots made short. */
  const projectWithImages = async (name: string, durations: number[]) => {
    const id = (await admin.post('/api/v1/projects/', { name, original_topic: STORY })).body.id as string;
    await followRun(await run(id, 'storyboard', { shot_count: durations.length }, { provider_id: llm }));
    await followRun(await run(id, 'camera', {}, { provider_id: llm }));
    await followRun(await run(id, 'image', { delay_ms: 0 }));
    const shots = (await admin.get(`/api/v1/projects/${id}/storyboards/`)).body.results as { id: string; sequence_number: number }[];
    expect(shots).toHaveLength(durations.length);
    for (const [i, shot] of shots.entries()) expect((await admin.patch(`/api/v1/storyboards/${shot.id}/`, { duration_seconds: durations[i] })).status).toBe(200);
    const movements = (await admin.get(`/api/v1/projects/${id}/camera-movements/`)).body.results as { id: string; shot_id: string; movement_type: string }[];
    return { id, shots, movements };
  };

  const probeClip = async (url: string) => {
    const res = await fetch(studio.url + url, { headers: { cookie: admin.cookie } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('video/mp4');
    const file = path.join(scratch, `${Math.random().toString(36).slice(2)}.mp4`);
    await writeFile(file, Buffer.from(await res.arrayBuffer()));
    const facts = await probe(tools, file);
    return facts.streams.find((s) => s.codec_type === 'video')!;
  };

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), 'clips-'));
    llmFake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    videoFake = await startFakeVideo({ kling: { accessKey: 'ak-clips', secretKey: 'sk-clips' }, prewarm: [5] });
    // One render at a time: the queue positions of waiting shots are then certain to be reported.
    studio = await startStudio({ mediaConcurrency: 1 }, undefined, undefined, { stages: { image: testMediaStage } });
    admin = await setupAdmin(studio);
    llm = (await admin.post('/api/v1/models/providers/', { name: 'fake', api_url: llmFake.url, model_name: 'fake-model?ttft=5&tps=800' })).body.id;
  });
  afterAll(async () => {
    await studio?.close();
    await llmFake?.close();
    await videoFake?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  // Real renders on a shared 2-core machine: generous bounds, the assertions are about behaviour.
  it('renders one local clip per shot at the project size and fps, as long as the shot, waiting in the render queue in turn', async () => {
    const { id, shots } = await projectWithImages('local', [1, 1.2, 0.8]);
    const runId = await run(id, 'video');
    const seen = await followRun(runId);
    const done = seen.events.at(-1)!.data;
    expect(done.type, JSON.stringify(done)).toBe('done');
    expect(done.run).toMatchObject({ provider: 'Local camera motion', model: 'ffmpeg', is_simulated: false });

    const clips = ofType(seen.events, 'clip');
    expect(clips.map((e) => e.data.shot_id).sort()).toEqual(shots.map((s) => s.id).sort());
    // Queued shots are told their place in line while the single render slot is busy.
    const positions = ofType(seen.events, 'task').filter((e) => e.data.status === 'queued' && e.data.position !== undefined);
    expect(positions.length).toBeGreaterThan(0);
    // In storyboard order: each shot took its place before the reads that prepare it.
    const renderStarts = new Set(ofType(seen.events, 'task').filter((e) => e.data.message === 'rendering').map((e) => e.data.shot_id));
    expect([...renderStarts]).toEqual(shots.map((s) => s.id));
    // Each shot is told when its render starts, and its percent only goes up. (How many steps lie between
    // 0 and 100 depends on how fast the machine renders: ffmpeg.test.ts covers the progress itself.)
    for (const shot of shots) {
      const own = ofType(seen.events, 'task').filter((e) => e.data.shot_id === shot.id && e.data.percent !== undefined);
      expect(own.some((e) => e.data.status === 'running' && e.data.message === 'rendering'), shot.id).toBe(true);
      const percents = own.map((e) => e.data.percent as number);
      expect(percents, shot.id).toEqual([...percents].sort((a, b) => a - b));
      expect(own.at(-1)!.data).toMatchObject({ status: 'succeeded', percent: 100 });
    }

    expect(done.output.clips.map((c: { shot_id: string }) => c.shot_id)).toEqual(shots.map((s) => s.id));
    expect(done.output.failed_shot_ids).toEqual([]);
    const images = ((await admin.get(`/api/v1/projects/${id}/stages/`)).body.find((s: { stage_type: string }) => s.stage_type === 'image').output.images) as { shot_id: string; url: string }[];
    for (const [i, clip] of (done.output.clips as Record<string, any>[]).entries()) {
      expect(clip).toMatchObject({ width: 720, height: 1280, fps: 25, method: 'local', poster_url: images.find((im) => im.shot_id === clip.shot_id)!.url });
      const video = await probeClip(clip.url);
      expect(video.width).toBe(720);
      expect(video.height).toBe(1280);
      expect(video.fps).toBeCloseTo(25, 3);
      expect(Math.abs(video.duration_s! - [1, 1.2, 0.8][i])).toBeLessThanOrEqual(1 / 25 + 1e-6);
    }
  });

  it('a second run with nothing changed starts no ffmpeg; a changed movement re-renders that shot only, and says so', async () => {
    const { id, shots, movements } = await projectWithImages('cache', [0.8, 0.8, 0.8]);
    const first = (await followRun(await run(id, 'video'))).events.at(-1)!.data;
    expect(first.type).toBe('done');

    const before = ffmpegInvocationCount();
    const again = await followRun(await run(id, 'video', { shot_ids: shots.map((s) => s.id) }));
    expect(ffmpegInvocationCount()).toBe(before);
    const statuses = ofType(again.events, 'task').filter((e) => ['succeeded', 'cached'].includes(e.data.status)).map((e) => e.data.status);
    expect(statuses).toEqual(['cached', 'cached', 'cached']);
    const reused = again.events.at(-1)!.data.output.clips as { media_id: string; cached?: boolean }[];
    expect(reused.map((c) => c.media_id)).toEqual(first.output.clips.map((c: { media_id: string }) => c.media_id));
    expect(reused.every((c) => c.cached === true)).toBe(true);

    // A hand edit of shot 2's movement marks its clip (only) stale…
    const second = movements.find((m) => m.shot_id === shots[1].id)!;
    const newType = second.movement_type === 'pan_left' ? 'pan_right' : 'pan_left';
    expect((await admin.patch(`/api/v1/camera-movements/${second.id}/`, { movement_type: newType, params: { intensity: 0.7 } })).status).toBe(200);
    expect((await videoStage(id)).stale_shot_ids).toEqual([shots[1].id]);

    // …and the next run with no input redoes that shot alone, one ffmpeg, the other clips kept.
    const beforeRedo = ffmpegInvocationCount();
    const redo = await followRun(await run(id, 'video'));
    expect(ffmpegInvocationCount() - beforeRedo).toBe(1);
    expect(ofType(redo.events, 'task').map((e) => e.data.shot_id)).toSatisfy((ids: string[]) => ids.every((s) => s === shots[1].id));
    const after = redo.events.at(-1)!.data.output.clips as { shot_id: string; media_id: string }[];
    expect(after).toHaveLength(3);
    expect(after[0].media_id).toBe(first.output.clips[0].media_id);
    expect(after[2].media_id).toBe(first.output.clips[2].media_id);
    expect(after[1].media_id).not.toBe(first.output.clips[1].media_id);
    expect((await videoStage(id)).stale_shot_ids).toEqual([]);

    // A new length for shot 3 marks it too.
    expect((await admin.patch(`/api/v1/storyboards/${shots[2].id}/`, { duration_seconds: 1.1 })).status).toBe(200);
    expect((await videoStage(id)).stale_shot_ids).toEqual([shots[2].id]);
  });

  it('cancel mid-run leaves no ffmpeg process and no half-written file; a clip finished before it is kept and reused', async () => {
    // Longer later shots: on a quiet machine a short clip renders before the test can cancel it.
    const { id, shots } = await projectWithImages('cancel', [0.8, 8, 8]);
    const runId = await run(id, 'video');
    // Wait until a clip is done and another render is under way (ffmpeg running, reporting progress);
    // the render queue picks the order, so any one of the shots may finish first.
    const beforeCancel = await followRun(runId, (events) => {
      const finished = ofType(events, 'clip').map((e) => e.data.shot_id);
      const rendering = ofType(events, 'task').some((e) => e.data.status === 'running' && e.data.percent > 0 && !finished.includes(e.data.shot_id));
      return finished.length >= 1 && finished.length < shots.length && rendering && ffmpegChildren() > 0;
    });
    const finishedShot = ofType(beforeCancel.events, 'clip')[0].data.shot_id as string;
    const cancelled = await admin.post(`/api/v1/runs/${runId}/cancel/`);
    expect(cancelled.body.status).toBe('cancelled');
    expect(liveMediaProcessCount()).toBe(0);
    // SIGKILL is delivered at once but the exit is reaped asynchronously: give the kernel a moment.
    await expect.poll(ffmpegChildren, { timeout: 5_000 }).toBe(0);
    const leftovers = (await filesUnder(path.join(studio.config.dataDir, 'media'))).filter((f) => f.includes('.work') || f.includes('.part'));
    expect(leftovers).toEqual([]);
    const tasks = ofType((await followRun(runId)).events, 'task');
    expect(tasks.filter((e) => e.data.status === 'cancelled').length).toBeGreaterThan(0);

    // The clip finished before the cancel is not rendered again.
    const before = ffmpegInvocationCount();
    const again = await followRun(await run(id, 'video', { shot_ids: [finishedShot] }));
    expect(ffmpegInvocationCount()).toBe(before);
    expect(ofType(again.events, 'task').at(-1)!.data.status).toBe('cached');
    expect(shots.map((s) => s.id)).toContain(finishedShot);
  });

  it('the AI method: a Kling clip fitted to the shot, its cost recorded; a failure mid-task fails that shot only', async () => {
    Object.assign(videoFake.knobs, DEFAULT_VIDEO_KNOBS, { queuedMs: 30, runningMs: 60 });
    const provider = await admin.post('/api/v1/models/providers/', {
      name: 'Kling (simulated upstream)',
      provider_type: 'image2video',
      api_format: 'kling',
      api_url: videoFake.url,
      api_key: 'ak-clips',
      api_secret: 'sk-clips',
      model_name: 'kling-v1',
      price_per_unit: 0.5,
    });
    expect(provider.status, JSON.stringify(provider.body)).toBe(201);
    const { id, shots } = await projectWithImages('ai', [3.2, 1.5]);
    expect((await admin.patch(`/api/v1/projects/${id}/stages/video/settings/`, { method: 'ai' })).status).toBe(200);

    const seen = await followRun(await run(id, 'video'));
    const done = seen.events.at(-1)!.data;
    expect(done.type, JSON.stringify(done)).toBe('done');
    expect(done.run.provider).toBe('Kling (simulated upstream)');
    const clips = done.output.clips as Record<string, any>[];
    expect(clips).toHaveLength(2);
    for (const [i, clip] of clips.entries()) {
      expect(clip).toMatchObject({ method: 'ai', provider: 'Kling (simulated upstream)', model: 'kling-v1', usage_seconds: 5, cost: 2.5 });
      const video = await probeClip(clip.url);
      expect([video.width, video.height]).toEqual([720, 1280]);
      // The vendor's 5 s clip is cut to the shot's length (±1 frame).
      expect(Math.abs(video.duration_s! - [3.2, 1.5][i])).toBeLessThanOrEqual(1 / 25 + 1e-6);
    }
    expect(done.run.usage.cost).toBeCloseTo(5, 6);

    // One shot's vendor task fails mid-task: that shot fails, the other still gets its clip.
    Object.assign(videoFake.knobs, { failTasks: 1 });
    const partial = await followRun(await run(id, 'video', { force: true }));
    const end = partial.events.at(-1)!.data;
    expect(end.type).toBe('done');
    expect(end.output.failed_shot_ids).toHaveLength(1);
    const failedTask = ofType(partial.events, 'task').find((e) => e.data.status === 'failed')!;
    expect(failedTask.data.message).toMatch(/risk control/);
    const okShot = shots.find((s) => s.id !== end.output.failed_shot_ids[0])!;
    expect(ofType(partial.events, 'clip').map((e) => e.data.shot_id)).toEqual([okShot.id]);
    expect(end.run.usage.cost).toBeCloseTo(2.5, 6);

    // A shot set back to local motion is rendered here even though the project uses a provider.
    expect((await admin.patch(`/api/v1/storyboards/${shots[1].id}/`, { media_settings: { video: { method: 'local' } } })).status).toBe(200);
    const mixed = await followRun(await run(id, 'video', { shot_ids: [shots[1].id] }));
    expect(mixed.events.at(-1)!.data.output.clips.find((c: { shot_id: string }) => c.shot_id === shots[1].id)).toMatchObject({ method: 'local', cost: 0 });
  });

  it('shutdown during a render kills ffmpeg and marks the run interrupted', async () => {
    const { id } = await projectWithImages('shutdown', [4, 4]);
    const runId = await run(id, 'video');
    await followRun(runId, (events) => ofType(events, 'task').some((e) => e.data.status === 'running' && e.data.percent > 0));
    expect(ffmpegChildren()).toBeGreaterThan(0);
    await studio.close({ keepDatabase: true });
    expect(liveMediaProcessCount()).toBe(0);
    await expect.poll(ffmpegChildren, { timeout: 5_000 }).toBe(0);
    const leftovers = (await filesUnder(path.join(studio.config.dataDir, 'media'))).filter((f) => f.includes('.work') || f.includes('.part'));
    expect(leftovers).toEqual([]);
    studio = await startStudio({ mediaConcurrency: 1 }, studio.testDb, undefined, { stages: { image: testMediaStage } });
    admin = new Client(studio.url);
    expect((await admin.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password })).status).toBe(200);
    expect((await admin.get(`/api/v1/runs/${runId}/`)).body.status).toBe('interrupted');
  });
});
