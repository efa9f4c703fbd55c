import { startFakeLlm } from '@ai-story/fake-llm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, createUser, setupAdmin, snapshot, startStudio, type TestStudio } from './helpers.ts';
import { follow } from './sse-client.ts';

describe(`storyboard and camera stages (${process.env.TEST_DB ?? 'pglite'})`, () => {
  let fake: Awaited<ReturnType<typeof startFakeLlm>>;
  let studio: TestStudio;
  let admin: Client;
  let projectId: string;
  const providers: Record<string, string> = {};

  const run = async (stage: string, providerLabel: string, input: Record<string, unknown> = {}) => {
    const res = await admin.post(`/api/v1/projects/${projectId}/stages/${stage}/runs/`, { input, provider_id: providers[providerLabel] });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return follow(`${studio.url}/api/v1/runs/${res.body.id}/events`, { cookie: admin.cookie });
  };
  const shots = async () => (await admin.get(`/api/v1/projects/${projectId}/storyboards/`)).body;

  beforeAll(async () => {
    fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    studio = await startStudio();
    admin = await setupAdmin(studio);
    for (const [label, quirk] of [['clean', ''], ['fenced', 'json_fenced'], ['broken', 'json_broken'], ['hopeless', 'json_hopeless']]) {
      const res = await admin.post('/api/v1/models/providers/', { name: label, api_url: fake.url, model_name: `fake-model?ttft=5&tps=300${quirk ? `&quirk=${quirk}` : ''}` });
      providers[label] = res.body.id;
    }
    projectId = (await admin.post('/api/v1/projects/', { name: '分镜', original_topic: '雨夜。一只橘猫在街角发抖。小女孩撑着红伞走来。她蹲下，把猫抱进怀里。第二天，阳光照进窗台。' })).body.id;
  });
  afterAll(async () => {
    await studio?.close();
    await fake?.close();
  });

  it('streams each shot as its own event before done, then saves the storyboard', async () => {
    const seen = await run('storyboard', 'clean');
    const types = seen.events.map((e) => e.data.type);
    const shotEvents = seen.events.filter((e) => e.data.type === 'shot');
    expect(shotEvents.length).toBeGreaterThanOrEqual(3);
    expect(types.indexOf('shot')).toBeLessThan(types.indexOf('done'));
    // The first shots arrive while the answer is still streaming: tokens come after them.
    expect(types.lastIndexOf('token')).toBeGreaterThan(types.indexOf('shot'));
    expect(shotEvents.map((e) => e.data.shot.sequence_number)).toEqual(shotEvents.map((_, i) => i + 1));
    const done = seen.events.at(-1)!.data;
    expect(done.type).toBe('done');
    expect(done.output.shots).toHaveLength(shotEvents.length);
    const saved = await shots();
    expect(saved.count).toBe(shotEvents.length);
    expect(saved.results.every((s: any) => s.id && s.scene_description && s.image_prompt)).toBe(true);
    expect(saved.total_duration_seconds).toBeGreaterThan(0);
  });

  it.each([['fenced'], ['broken']])('repairs %s JSON from the model', async (label) => {
    const seen = await run('storyboard', label);
    expect(seen.events.at(-1)!.data.type).toBe('done');
    expect((await shots()).count).toBeGreaterThanOrEqual(3);
  });

  it('fails a hopeless answer with a reason and leaves the previous storyboard untouched', async () => {
    const before = await shots();
    const seen = await run('storyboard', 'hopeless');
    const last = seen.events.at(-1)!.data;
    expect(last.type).toBe('error');
    expect(last.code).toBe('bad_output');
    expect(last.message).toMatch(/JSON|shots/);
    expect(await shots()).toEqual(before);
  });

  it('keeps sequence numbers dense and unique through add, delete and reorder', async () => {
    const dense = (list: any) => expect(list.results.map((s: any) => s.sequence_number)).toEqual(list.results.map((_: unknown, i: number) => i + 1));
    const start = await shots();
    const added = await admin.post(`/api/v1/projects/${projectId}/storyboards/`, { scene_description: '插入的镜头', narration_text: '旁白', sequence_number: 2, duration_seconds: 4 });
    expect(added.status).toBe(201);
    expect(added.body.sequence_number).toBe(2);
    let list = await shots();
    dense(list);
    expect(list.count).toBe(start.count + 1);
    expect(list.results[1].scene_description).toBe('插入的镜头');

    expect((await admin.delete(`/api/v1/storyboards/${list.results[0].id}/`)).status).toBe(204);
    list = await shots();
    dense(list);
    expect(list.results[0].scene_description).toBe('插入的镜头');

    const reversed = [...list.results].reverse().map((s: any) => s.id);
    const reordered = await admin.post(`/api/v1/projects/${projectId}/storyboards/reorder/`, { ids: reversed });
    expect(reordered.status).toBe(200);
    list = await shots();
    dense(list);
    expect(list.results.map((s: any) => s.id)).toEqual(reversed);

    const edited = await admin.patch(`/api/v1/storyboards/${reversed[0]}/`, { narration_text: '改过的旁白', duration_seconds: 6 });
    expect(edited.body).toMatchObject({ narration_text: '改过的旁白', duration_seconds: 6, sequence_number: 1 });
  });

  it.each([
    ['reorder missing a shot', 'POST', '/reorder', (ids: string[]) => ({ ids: ids.slice(1) }), 'ids'],
    ['reorder with a duplicate', 'POST', '/reorder', (ids: string[]) => ({ ids: [ids[0], ...ids.slice(0, -1)] }), 'ids'],
    ['a shot with a negative duration', 'POST', '/', () => ({ duration_seconds: -1 }), 'duration_seconds'],
    ['a shot with a wrong type', 'POST', '/', () => ({ narration_text: 5 }), 'narration_text'],
  ])('rejects %s with 400 and changes nothing', async (_label, method, suffix, body, field) => {
    const ids = (await shots()).results.map((s: any) => s.id);
    const before = await snapshot(studio.database);
    const beforeShots = await shots();
    const res = await admin.request(method, `/api/v1/projects/${projectId}/storyboards${suffix}`, body(ids));
    expect(res.status).toBe(400);
    expect(Object.keys(res.body.error.details.fields)).toContain(field);
    expect(await snapshot(studio.database)).toEqual(before);
    expect(await shots()).toEqual(beforeShots);
  });

  it('runs camera: exactly one movement per shot, streamed as movement events', async () => {
    const list = await shots();
    const seen = await run('camera', 'clean');
    const movements = seen.events.filter((e) => e.data.type === 'movement').map((e) => e.data.movement);
    expect(seen.events.at(-1)!.data.type).toBe('done');
    expect(movements).toHaveLength(list.count);
    expect(new Set(movements.map((m: any) => m.shot_id))).toEqual(new Set(list.results.map((s: any) => s.id)));
    const saved = (await admin.get(`/api/v1/projects/${projectId}/camera-movements/`)).body;
    expect(saved.count).toBe(list.count);
    expect(saved.results.map((m: any) => m.sequence_number)).toEqual(list.results.map((s: any) => s.sequence_number));
    for (const m of saved.results) {
      expect(['static', 'zoom_in', 'zoom_out', 'pan_left', 'pan_right', 'tilt_up', 'tilt_down', 'dolly_in', 'dolly_out']).toContain(m.movement_type);
      expect(m.params.intensity).toBeGreaterThanOrEqual(0);
      expect(m.params.intensity).toBeLessThanOrEqual(1);
    }
  });

  it('regenerates one shot alone and lets a person edit a movement', async () => {
    const list = await shots();
    const before = (await admin.get(`/api/v1/projects/${projectId}/camera-movements/`)).body.results;
    const target = list.results[1].id;
    const seen = await run('camera', 'clean', { shot_ids: [target] });
    const movements = seen.events.filter((e) => e.data.type === 'movement');
    expect(movements).toHaveLength(1);
    expect(movements[0].data.movement.shot_id).toBe(target);
    const after = (await admin.get(`/api/v1/projects/${projectId}/camera-movements/`)).body.results;
    expect(after).toHaveLength(before.length);
    const edited = await admin.patch(`/api/v1/camera-movements/${after[0].id}/`, { movement_type: 'tilt_up', params: { intensity: 0.9 } });
    expect(edited.body).toMatchObject({ movement_type: 'tilt_up', params: { intensity: 0.9 } });
    // Editing the camera's own output does not make the camera stage out of date.
    const stages = (await admin.get(`/api/v1/projects/${projectId}/stages/`)).body;
    expect(stages.find((s: { stage_type: string }) => s.stage_type === 'camera').stale).toBe(false);
    expect((await admin.patch(`/api/v1/camera-movements/${after[0].id}/`, { movement_type: 'spin' })).status).toBe(400);
    expect((await admin.patch(`/api/v1/camera-movements/${after[0].id}/`, { params: { intensity: 2 } })).status).toBe(400);
  });

  it('refuses camera before a storyboard exists, naming the input', async () => {
    const empty = (await admin.post('/api/v1/projects/', { name: 'empty', original_topic: 'x' })).body.id;
    const res = await admin.post(`/api/v1/projects/${empty}/stages/camera/runs/`, { input: {}, provider_id: providers.clean });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/storyboard/i);
  });

  it('keeps a stranger out of the storyboard', async () => {
    const stranger = await createUser(studio, admin, 'stranger@example.com');
    const id = (await shots()).results[0].id;
    expect((await stranger.get(`/api/v1/projects/${projectId}/storyboards/`)).status).toBe(404);
    expect((await stranger.patch(`/api/v1/storyboards/${id}/`, { narration_text: 'x' })).status).toBe(404);
    expect((await stranger.delete(`/api/v1/storyboards/${id}/`)).status).toBe(404);
  });

  it("serves the seed's storyboard-stream endpoint with the stage input as its body", async () => {
    const res = await follow(`${studio.url}/api/v1/projects/${projectId}/storyboard-stream/`, {
      cookie: admin.cookie,
      method: 'POST',
      body: { text: '清晨的渔港。老人收起渔网。海鸥掠过桅杆。', shot_count: 3, provider_id: providers.clean },
    });
    expect(res.status).toBe(200);
    expect(res.events[0].data).toMatchObject({ type: 'stage_update', status: 'running' });
    expect(res.events.some((e) => e.data.type === 'shot')).toBe(true);
    expect(res.events.at(-1)!.data.type).toBe('done');
    const bad = await admin.post(`/api/v1/projects/${projectId}/storyboard-stream/`, { text: 'x', min_duration: 9, max_duration: 2 });
    expect(bad.status).toBe(400);
    expect(Object.keys(bad.body.error.details.fields)).toContain('input.min_duration');
  });
});
