import { startFakeLlm } from '@ai-story/fake-llm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testMediaStage } from './fixtures/test-media-stage.ts';
import { ADMIN, Client, createTestDatabase, createUser, leasesExpired, setupAdmin, spawnStudio, startStudio, type TestStudio } from './helpers.ts';
import { follow, type ReceivedEvent } from './sse-client.ts';

const STORY = '雨夜。一只橘猫在街角发抖。小女孩撑着红伞走来。她蹲下，把猫抱进怀里。第二天，阳光照进窗台。';

const ofType = (events: ReceivedEvent[], type: string) => events.filter((e) => e.data.type === type);

describe(`the engine's media kind of stage, and shots that keep their ids (${process.env.TEST_DB ?? 'pglite'})`, () => {
  let fake: Awaited<ReturnType<typeof startFakeLlm>>;
  let studio: TestStudio;
  let admin: Client;
  let llm: string;

  const newProjectWithShots = async (name: string) => {
    const id = (await admin.post('/api/v1/projects/', { name, original_topic: STORY })).body.id as string;
    const res = await admin.post(`/api/v1/projects/${id}/stages/storyboard/runs/`, { input: { shot_count: 4 }, provider_id: llm });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    await follow(`${studio.url}/api/v1/runs/${res.body.id}/events`, { cookie: admin.cookie });
    const shots = (await admin.get(`/api/v1/projects/${id}/storyboards/`)).body.results as { id: string; sequence_number: number }[];
    return { id, shots };
  };
  /** A new process on the same database: nothing of the runs is left in memory. */
  const restart = async () => {
    await studio.close({ keepDatabase: true });
    studio = await startStudio({}, studio.testDb, undefined, { stages: { image: testMediaStage } });
    admin = new Client(studio.url);
    expect((await admin.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password })).status).toBe(200);
  };
  const startMedia = async (projectId: string, input: Record<string, unknown> = {}) => {
    const res = await admin.post(`/api/v1/projects/${projectId}/stages/image/runs/`, { input });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body as { id: string };
  };

  beforeAll(async () => {
    fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    studio = await startStudio({}, undefined, undefined, { stages: { image: testMediaStage } });
    admin = await setupAdmin(studio);
    llm = (await admin.post('/api/v1/models/providers/', { name: 'fake', api_url: fake.url, model_name: 'fake-model?ttft=5&tps=400' })).body.id;
  });
  afterAll(async () => {
    await studio?.close();
    await fake?.close();
  });

  it('runs one task per shot, sends each finished item before done, and serves its media to those with access only', async () => {
    const { id, shots } = await newProjectWithShots('media');
    const run = await startMedia(id);
    const seen = await follow(`${studio.url}/api/v1/runs/${run.id}/events`, { cookie: admin.cookie });
    const types = seen.events.map((e) => e.data.type);
    const images = ofType(seen.events, 'image');
    expect(images.map((e) => e.data.shot_id).sort()).toEqual(shots.map((s) => s.id).sort());
    expect(types.lastIndexOf('image')).toBeLessThan(types.indexOf('done'));
    for (const shot of shots) {
      const statuses = ofType(seen.events, 'task').filter((e) => e.data.shot_id === shot.id).map((e) => e.data.status);
      expect(statuses[0]).toBe('queued');
      expect(statuses.at(-1)).toBe('succeeded');
    }
    const progress = ofType(seen.events, 'progress').map((e) => e.data);
    expect(progress.at(-1)).toMatchObject({ done: shots.length, total: shots.length, percent: 100 });
    const done = seen.events.at(-1)!.data;
    expect(done.type).toBe('done');
    expect(done.full_text).toBeUndefined();
    expect(done.output.images).toHaveLength(shots.length);
    expect(done.output.failed_shot_ids).toEqual([]);
    const stage = (await admin.get(`/api/v1/projects/${id}/stages/`)).body.find((s: { stage_type: string }) => s.stage_type === 'image');
    expect(stage.status).toBe('completed');

    const url = images[0].data.image.url as string;
    const file = await fetch(studio.url + url, { headers: { cookie: admin.cookie } });
    expect(file.status).toBe(200);
    expect(file.headers.get('content-type')).toBe('image/png');
    expect(file.headers.get('cache-control')).toContain('immutable');
    const bytes = Buffer.from(await file.arrayBuffer());
    expect(bytes.subarray(1, 4).toString()).toBe('PNG');
    const part = await fetch(studio.url + url, { headers: { cookie: admin.cookie, range: 'bytes=0-7' } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(bytes.subarray(0, 8));
    const stranger = await createUser(studio, admin, 'stranger-media@example.com');
    expect((await stranger.get(url)).status).toBe(404);
    expect((await admin.get('/api/v1/media/not-a-uuid')).status).toBe(404);
  });

  it('ends completed with failed_shot_ids when some shots fail, and failed when all do', async () => {
    const { id, shots } = await newProjectWithShots('partial');
    const some = await startMedia(id, { fail_shots: [2] });
    const partial = await follow(`${studio.url}/api/v1/runs/${some.id}/events`, { cookie: admin.cookie });
    const done = partial.events.at(-1)!.data;
    expect(done.type).toBe('done');
    expect(done.output.failed_shot_ids).toEqual([shots[1].id]);
    expect(ofType(partial.events, 'task').find((e) => e.data.shot_id === shots[1].id && e.data.status === 'failed')?.data.message).toMatch(/told to fail/);

    const all = await startMedia(id, { fail_shots: shots.map((s) => s.sequence_number) });
    const failed = await follow(`${studio.url}/api/v1/runs/${all.id}/events`, { cookie: admin.cookie });
    expect(failed.events.at(-1)!.data).toMatchObject({ type: 'error', code: 'all_shots_failed' });
    expect((await admin.get(`/api/v1/runs/${all.id}/`)).body.status).toBe('failed');
  });

  it('a cancel keeps the items finished before it, and they replay from the database after a restart', async () => {
    const { id } = await newProjectWithShots('cancel');
    // Shots 3 and 4 wait for the cancel; 1 and 2 finish before it.
    const run = await startMedia(id, { delay_ms: 0, hold_shots: [3, 4] });
    await follow(`${studio.url}/api/v1/runs/${run.id}/events`, { cookie: admin.cookie, stopWhen: (events) => ofType(events, 'image').length >= 2 });
    const cancelled = await admin.post(`/api/v1/runs/${run.id}/cancel/`);
    expect(cancelled.body.status).toBe('cancelled');
    const live = await follow(`${studio.url}/api/v1/runs/${run.id}/events`, { cookie: admin.cookie });
    const kept = ofType(live.events, 'image').map((e) => e.data.image.media_id);
    expect(kept).toHaveLength(2);
    expect(live.events.at(-1)!.data).toMatchObject({ type: 'stage_update', status: 'cancelled' });

    // A new process has no log in memory: the items come back from the database.
    await restart();
    const replay = await follow(`${studio.url}/api/v1/runs/${run.id}/events`, { cookie: admin.cookie });
    expect(ofType(replay.events, 'image').map((e) => e.data.image.media_id)).toEqual(kept);
    expect(replay.events.at(-1)!.data).toMatchObject({ type: 'stage_update', status: 'cancelled' });
    expect((await fetch(studio.url + ofType(replay.events, 'image')[0].data.image.url, { headers: { cookie: admin.cookie } })).status).toBe(200);
  });

  it('tells a newcomer to a media run in flight where it stands at once, not at its next finished shot', async () => {
    const { id } = await newProjectWithShots('newcomer');
    const run = await startMedia(id, { delay_ms: 0, hold_shots: [3, 4] });
    try {
      await follow(`${studio.url}/api/v1/runs/${run.id}/events`, { cookie: admin.cookie, stopWhen: (events) => ofType(events, 'image').length >= 2 });
      // Shots 3 and 4 are held: no progress event comes after this one joins, so it must be in the catch-up.
      const joined = await follow(`${studio.url}/api/v1/runs/${run.id}/events`, { cookie: admin.cookie, stopWhen: (events) => ofType(events, 'progress').length > 0, timeoutMs: 5_000 });
      const progress = ofType(joined.events, 'progress');
      expect(progress.map((e) => e.data)).toEqual([expect.objectContaining({ done: 2, total: 4 })]);
      expect(ofType(joined.events, 'image')).toHaveLength(2);
    } finally {
      await admin.post(`/api/v1/runs/${run.id}/cancel/`);
    }
  });

  it('a storyboard run again keeps the ids of the shots that still exist, and marks only changed shots stale downstream', async () => {
    const { id, shots } = await newProjectWithShots('ids');
    await follow(`${studio.url}/api/v1/runs/${(await startMedia(id)).id}/events`, { cookie: admin.cookie });
    const again = await admin.post(`/api/v1/projects/${id}/stages/storyboard/runs/`, { input: { shot_count: 5 }, provider_id: llm });
    await follow(`${studio.url}/api/v1/runs/${again.body.id}/events`, { cookie: admin.cookie });
    const after = (await admin.get(`/api/v1/projects/${id}/storyboards/`)).body.results as { id: string }[];
    expect(after).toHaveLength(5);
    expect(after.slice(0, 4).map((s) => s.id)).toEqual(shots.map((s) => s.id));
    const image = (await admin.get(`/api/v1/projects/${id}/stages/`)).body.find((s: { stage_type: string }) => s.stage_type === 'image');
    expect(image.stale).toBe(false);
    expect(image.stale_shot_ids).toContain(after[4].id);

    const fewer = await admin.post(`/api/v1/projects/${id}/stages/storyboard/runs/`, { input: { shot_count: 2 }, provider_id: llm });
    await follow(`${studio.url}/api/v1/runs/${fewer.body.id}/events`, { cookie: admin.cookie });
    const two = (await admin.get(`/api/v1/projects/${id}/storyboards/`)).body.results as { id: string }[];
    expect(two.map((s) => s.id)).toEqual(shots.slice(0, 2).map((s) => s.id));
  });

  it('a finished storyboard run replays its shot events after a restart', async () => {
    const id = (await admin.post('/api/v1/projects/', { name: 'replay', original_topic: STORY })).body.id;
    const res = await admin.post(`/api/v1/projects/${id}/stages/storyboard/runs/`, { input: { shot_count: 3 }, provider_id: llm });
    const first = await follow(`${studio.url}/api/v1/runs/${res.body.id}/events`, { cookie: admin.cookie });
    const shots = ofType(first.events, 'shot').map((e) => e.data.shot.scene_description);
    expect(shots.length).toBeGreaterThanOrEqual(3);

    await restart();
    const replay = await follow(`${studio.url}/api/v1/runs/${res.body.id}/events`, { cookie: admin.cookie });
    expect(ofType(replay.events, 'shot').map((e) => e.data.shot.scene_description)).toEqual(shots);
    expect(ofType(replay.events, 'shot').every((e) => typeof e.data.shot.id === 'string')).toBe(true);
    expect(replay.text).toBe(first.text);
    expect(replay.events.at(-1)!.data.type).toBe('done');
  });

  it('the project stream gives a newcomer strictly increasing ids, and leaves tokens to the run stream when asked', async () => {
    const id = (await admin.post('/api/v1/projects/', { name: 'stream', original_topic: STORY })).body.id;
    const slow = (await admin.post('/api/v1/models/providers/', { name: 'slow', api_url: fake.url, model_name: 'fake-model?ttft=5&tps=60&tokens=120' })).body.id;
    const run = await admin.post(`/api/v1/projects/${id}/stages/rewrite/runs/`, { input: {}, provider_id: slow });
    await follow(`${studio.url}/api/v1/runs/${run.body.id}/events`, { cookie: admin.cookie, stopWhen: (e) => ofType(e, 'token').length >= 3 });

    const isDone = (events: ReceivedEvent[]) => events.some((e) => e.data.type === 'done');
    const [full, lean, own] = await Promise.all([
      follow(`${studio.url}/api/v1/projects/${id}/events`, { cookie: admin.cookie, stopWhen: isDone }),
      follow(`${studio.url}/api/v1/projects/${id}/events?tokens=0`, { cookie: admin.cookie, stopWhen: isDone }),
      follow(`${studio.url}/api/v1/runs/${run.body.id}/events`, { cookie: admin.cookie }),
    ]);
    for (const stream of [full, lean]) {
      const ids = stream.events.map((e) => e.id).filter((n) => !Number.isNaN(n));
      expect(ids.length).toBeGreaterThan(0);
      for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1]);
    }
    // The newcomer's catch-up holds the text so far, so its tokens add up to the whole text.
    expect(full.text).toBe(own.text);
    expect(ofType(lean.events, 'token')).toHaveLength(0);
    expect(ofType(lean.events, 'progress')).toHaveLength(0);
    expect(ofType(lean.events, 'done')[0].data.full_text).toBe(own.text);
  });
});

describe(`a media run killed with the server (${process.env.TEST_DB ?? 'pglite'})`, () => {
  it('is interrupted after restart, with the items it had finished kept', { timeout: 240_000 }, async () => {
    const fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    const testDb = await createTestDatabase();
    const studioProcess = await spawnStudio(testDb, 'apps/server/test/fixtures/studio-with-test-stage.ts');
    try {
      const base = studioProcess.base;
      const admin = new Client(base);
      expect((await admin.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password })).status).toBe(200);
      const llm = (await admin.post('/api/v1/models/providers/', { name: 'fake', api_url: fake.url, model_name: 'fake-model?ttft=5&tps=400' })).body.id;
      const project = (await admin.post('/api/v1/projects/', { name: 'kill', original_topic: STORY })).body.id;
      const board = await admin.post(`/api/v1/projects/${project}/stages/storyboard/runs/`, { input: { shot_count: 4 }, provider_id: llm });
      await follow(`${base}/api/v1/runs/${board.body.id}/events`, { cookie: admin.cookie });
      // Shots 3 and 4 never finish by themselves: the kill lands while they are in flight.
      const run = await admin.post(`/api/v1/projects/${project}/stages/image/runs/`, { input: { delay_ms: 0, hold_shots: [3, 4] } });
      expect(run.status).toBe(202);
      const before = await follow(`${base}/api/v1/runs/${run.body.id}/events`, { cookie: admin.cookie, stopWhen: (e) => ofType(e, 'image').length >= 2 });
      const finished = ofType(before.events, 'image').map((e) => e.data.image.media_id);
      await studioProcess.kill();
      await leasesExpired(testDb);

      const studio = await startStudio({}, testDb, undefined, { stages: { image: testMediaStage } });
      try {
        const c = new Client(studio.url);
        await c.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password });
        expect((await c.get(`/api/v1/runs/${run.body.id}/`)).body.status).toBe('interrupted');
        const replay = await follow(`${studio.url}/api/v1/runs/${run.body.id}/events`, { cookie: c.cookie });
        const kept = ofType(replay.events, 'image').map((e) => e.data.image.media_id);
        expect(kept).toEqual(finished);
        expect(replay.events.at(-1)!.data).toMatchObject({ type: 'stage_update', status: 'interrupted' });
        for (const e of ofType(replay.events, 'image')) {
          expect((await fetch(studio.url + e.data.image.url, { headers: { cookie: c.cookie } })).status).toBe(200);
        }
      } finally {
        await studio.close();
      }
    } finally {
      await studioProcess.kill();
      await fake.close();
    }
  });
});

describe(`a studio without ffmpeg (${process.env.TEST_DB ?? 'pglite'})`, () => {
  it('refuses a rendering stage up front with 503, saying what to install, and still runs the LLM stages', async () => {
    const fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    const studio = await startStudio({ mediaTools: { FFMPEG_PATH: '/nonexistent/ffmpeg', FFPROBE_PATH: '/nonexistent/ffprobe' } });
    try {
      const admin = await setupAdmin(studio);
      const llm = (await admin.post('/api/v1/models/providers/', { name: 'fake', api_url: fake.url, model_name: 'fake-model?ttft=5&tps=400' })).body.id;
      const id = (await admin.post('/api/v1/projects/', { name: 'no ffmpeg', original_topic: STORY })).body.id;
      const board = await admin.post(`/api/v1/projects/${id}/stages/storyboard/runs/`, { input: { shot_count: 2 }, provider_id: llm });
      expect(board.status).toBe(202);
      await follow(`${studio.url}/api/v1/runs/${board.body.id}/events`, { cookie: admin.cookie });
      for (const stage of ['narration', 'video']) {
        const res = await admin.post(`/api/v1/projects/${id}/stages/${stage}/runs/`, { input: {} });
        expect(res.status).toBe(503);
        expect(res.body.error).toMatchObject({ code: 'unavailable', details: { missing: 'ffmpeg' } });
        expect(res.body.error.message).toMatch(/apt-get install -y ffmpeg/);
      }
      expect((await admin.get(`/api/v1/projects/${id}/stages/narration/runs/`)).body.count).toBe(0);
    } finally {
      await studio.close();
      await fake.close();
    }
  });
});
