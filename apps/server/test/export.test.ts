import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startFakeLlm } from '@ai-story/fake-llm';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { media } from '../src/db/schema.ts';
import { invocationCount, liveChildPids } from '../src/export/ffmpeg-process.ts';
import { parseSrt } from '../src/narration/subtitles.ts';
import { testNarrationStage, testVideoStage } from './fixtures/export-inputs.ts';
import { setupAdmin, startStudio, type Client, type TestStudio } from './helpers.ts';
import { follow, type ReceivedEvent } from './sse-client.ts';

const STORY = '雨夜。一只橘猫在街角发抖。小女孩撑着红伞走来。她蹲下，把猫抱进怀里。第二天，阳光照进窗台。';
const CLIP_S = 1.2;
const FPS = 25;
const ofType = (events: ReceivedEvent[], type: string) => events.filter((e) => e.data.type === type);

describe(`the export stage over real clips and narration (${process.env.TEST_DB ?? 'pglite'})`, () => {
  let fake: Awaited<ReturnType<typeof startFakeLlm>>;
  let studio: TestStudio;
  let admin: Client;
  let projectId: string;
  let shots: { id: string; sequence_number: number }[];
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'export-stage-test-'));

  const run = async (stage: string, input: Record<string, unknown> = {}) => {
    const res = await admin.post(`/api/v1/projects/${projectId}/stages/${stage}/runs/`, { input });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const seen = await follow(`${studio.url}/api/v1/runs/${res.body.id}/events`, { cookie: admin.cookie, timeoutMs: 120_000 });
    return { id: res.body.id as string, events: seen.events, done: seen.events.at(-1)!.data };
  };
  const download = async (url: string, name: string) => {
    const res = await fetch(`${studio.url}${url}?download=1`, { headers: { cookie: admin.cookie } });
    expect(res.status).toBe(200);
    const file = path.join(tmp, name);
    writeFileSync(file, Buffer.from(await res.arrayBuffer()));
    return { file, type: res.headers.get('content-type'), disposition: res.headers.get('content-disposition') };
  };
  const ffprobe = (file: string) =>
    JSON.parse(spawnSync('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', file], { encoding: 'utf8' }).stdout);
  const mediaCount = async () => (await studio.database.db.select().from(media).where(eq(media.projectId, projectId))).length;

  beforeAll(async () => {
    fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    studio = await startStudio({}, undefined, undefined, { stages: { video: testVideoStage, narration: testNarrationStage } });
    admin = await setupAdmin(studio);
    const llm = (await admin.post('/api/v1/models/providers/', { name: 'fake', api_url: fake.url, model_name: 'fake-model?ttft=5&tps=400' })).body.id;
    projectId = (await admin.post('/api/v1/projects/', { name: '雨夜的猫', original_topic: STORY })).body.id;
    const sb = await admin.post(`/api/v1/projects/${projectId}/stages/storyboard/runs/`, { input: { shot_count: 3 }, provider_id: llm });
    expect(sb.status, JSON.stringify(sb.body)).toBe(202);
    await follow(`${studio.url}/api/v1/runs/${sb.body.id}/events`, { cookie: admin.cookie });
    shots = (await admin.get(`/api/v1/projects/${projectId}/storyboards/`)).body.results;
    expect(shots).toHaveLength(3);
    expect((await run('video', { seconds: CLIP_S })).done.type).toBe('done');
    expect((await run('narration', { texts: { 1: '雨夜，街角。', 2: '小女孩来了。', 3: '阳光照进窗台。' } })).done.type).toBe('done');
  }, 180_000);
  afterAll(async () => {
    await studio?.close();
    await fake?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('previews the timeline the export renders, before any export, and takes background music checked by its bytes', async () => {
    const preview = (await admin.get(`/api/v1/projects/${projectId}/export/preview/`)).body;
    expect(preview).toMatchObject({ width: 720, height: 1280, fps: 25 });
    expect(preview.shots.map((s: any) => s.shot_id)).toEqual(shots.map((s) => s.id));
    expect(preview.shots.every((s: any) => s.clip_url && s.narration_url)).toBe(true);
    // Default fade of 0.4 s: each shot starts 0.4 s before the previous one ends.
    expect(preview.shots.map((s: any) => s.start_s)).toEqual([0, CLIP_S - 0.4, 2 * (CLIP_S - 0.4)].map((x) => Math.round(x * FPS) / FPS));
    expect(preview.total_s).toBeCloseTo(3 * CLIP_S - 0.8, 5);
    expect(preview.lines.length).toBeGreaterThanOrEqual(3);
    expect(preview.label).toBe('AI 生成');

    // A hand edit of one line shows in the preview; an empty edit removes the line.
    const key = preview.lines[0].key;
    await admin.patch(`/api/v1/projects/${projectId}/stages/export/settings/`, { subtitle_edits: { [key]: '雨夜的街角' } });
    const edited = (await admin.get(`/api/v1/projects/${projectId}/export/preview/`)).body;
    expect(edited.lines[0]).toMatchObject({ key, text: '雨夜的街角', edited: true });
    await admin.patch(`/api/v1/projects/${projectId}/stages/export/settings/`, { subtitle_edits: {} });

    const upload = (body: Buffer, type = 'application/octet-stream') =>
      fetch(`${studio.url}/api/v1/projects/${projectId}/stages/export/music/`, { method: 'POST', headers: { cookie: admin.cookie, 'content-type': type }, body: new Uint8Array(body) });
    const tone = path.join(tmp, 'music.m4a');
    spawnSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=330:duration=2', '-c:a', 'aac', tone]);
    const ok = await upload(readFileSync(tone), 'audio/mp4');
    expect(ok.status).toBe(201);
    const music = await ok.json();
    expect(music.mime).toMatch(/^audio\//);
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4500000000049454e44ae426082', 'hex');
    expect((await upload(png, 'audio/mpeg')).status).toBe(400);
    // In-process, so no socket is left half-way through a 20 MB upload the server refused.
    const tooLarge = await studio.app.inject({
      method: 'POST',
      url: `/api/v1/projects/${projectId}/stages/export/music/`,
      headers: { cookie: admin.cookie, 'content-type': 'audio/mpeg' },
      payload: Buffer.alloc(20 * 1024 * 1024 + 1),
    });
    expect(tooLarge.statusCode).toBe(413);
    const set = await admin.patch(`/api/v1/projects/${projectId}/stages/export/settings/`, { music_media_id: music.media_id, music_volume: 0.3 });
    expect(set.body).toMatchObject({ music_media_id: music.media_id, music_duck: true });
    expect((await admin.patch(`/api/v1/projects/${projectId}/stages/export/settings/`, { transition: 'wipe' })).status).toBe(400);
  });

  let first: { id: string; output: any };

  it('exports one H.264 + AAC MP4 of the right length with a soft subtitle track, the AIGC metadata, cover, SRT/ASS, narration and a 剪映 draft', async () => {
    const settings = await admin.patch(`/api/v1/projects/${projectId}/stages/export/settings/`, { subtitle_mode: 'soft', transition: 'fade', transition_s: 0.4 });
    expect(settings.status, JSON.stringify(settings.body)).toBe(200);
    const exported = await run('export');
    expect(exported.done.type, JSON.stringify(exported.done)).toBe('done');
    const out = exported.done.output;
    first = { id: exported.id, output: out };
    expect(out.failed_shot_ids).toEqual([]);
    expect(out.segments).toEqual({ rendered: 3, reused: 0 });

    // Live progress of the finishing step: percent, step codes, elapsed and time left.
    const steps = ofType(exported.events, 'progress').map((e) => e.data).filter((p) => p.step && p.step.code !== 'shots');
    const codes = new Set(steps.map((p) => p.step.code));
    for (const code of ['compose', 'cover', 'draft']) expect(codes).toContain(code);
    expect(steps.some((p) => p.percent > 0 && p.percent < 100 && typeof p.eta_ms === 'number')).toBe(true);
    expect(steps.at(-1)).toMatchObject({ percent: 100, eta_ms: 0 });

    const video = await download(out.video.url, 'video.mp4');
    const named = await fetch(`${studio.url}${out.video.url}?download=1&name=${encodeURIComponent('雨夜的猫')}`, { headers: { cookie: admin.cookie } });
    expect(named.headers.get('content-disposition')).toContain(`filename*=UTF-8''${encodeURIComponent('雨夜的猫.mp4')}`);
    await named.arrayBuffer(); // an unread body keeps the connection busy and the studio from closing
    expect(video.type).toBe('video/mp4');
    expect(video.disposition).toMatch(/attachment/);
    const info = ffprobe(video.file);
    const v = info.streams.filter((s: any) => s.codec_type === 'video');
    const a = info.streams.filter((s: any) => s.codec_type === 'audio');
    const s = info.streams.filter((s: any) => s.codec_type === 'subtitle');
    expect(v.map((x: any) => x.codec_name)).toEqual(['h264']);
    expect(a.map((x: any) => x.codec_name)).toEqual(['aac']);
    expect(s.map((x: any) => x.codec_name)).toEqual(['mov_text']);
    expect([v[0].width, v[0].height]).toEqual([720, 1280]);
    expect(v[0].r_frame_rate).toBe('25/1');
    const expected = 3 * CLIP_S - 2 * 0.4;
    expect(Math.abs(Number(info.format.duration) - expected)).toBeLessThanOrEqual(1 / FPS + 0.03);
    expect(Math.abs(out.video.duration_s - expected)).toBeLessThanOrEqual(1 / FPS);
    expect(info.format.tags.comment).toMatch(/AIGC/);
    expect(info.format.tags.title).toBe('雨夜的猫');
    expect(out.video.size_bytes).toBe(readFileSync(video.file).length);

    const srt = await download(out.subtitles.srt_url, 'subs.srt');
    const lines = parseSrt(readFileSync(srt.file, 'utf8'));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines.map((l) => l.text).join('')).toContain('小女孩来了');
    // The second shot's lines start where that shot starts on the faded timeline.
    const second = lines.find((l) => l.text.includes('小女孩'))!;
    expect(second.start_s).toBeCloseTo(CLIP_S - 0.4, 2);
    // The fade overlaps the shots, never their lines: one line on screen at a time.
    for (let i = 0; i + 1 < lines.length; i++) expect(lines[i].end_s).toBeLessThanOrEqual(lines[i + 1].start_s + 0.001);
    const ass = await download(out.subtitles.ass_url, 'subs.ass');
    expect(readFileSync(ass.file, 'utf8')).toContain('[Events]');
    const cover = await download(out.cover_url, 'cover.jpg');
    expect(cover.type).toBe('image/jpeg');
    const narration = await download(out.narration_url, 'narration.m4a');
    const n = ffprobe(narration.file);
    expect(n.streams.map((x: any) => x.codec_name)).toEqual(['aac']);
    expect(Math.abs(Number(n.format.duration) - expected)).toBeLessThan(0.1);

    // The draft: every referenced file inside, durations in µs, subtitle texts = the SRT's (back-to-back timeline).
    const draft = await download(out.draft_url, 'draft.zip');
    expect(draft.type).toBe('application/zip');
    const listing = spawnSync('unzip', ['-Z1', draft.file], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    const contentEntry = listing.find((e) => e.endsWith('/draft_content.json'))!;
    expect(listing.some((e) => e.endsWith('/draft_meta_info.json'))).toBe(true);
    const content = JSON.parse(spawnSync('unzip', ['-p', draft.file, contentEntry], { encoding: 'utf8', maxBuffer: 1 << 26 }).stdout);
    const folder = contentEntry.split('/')[0];
    const types = content.tracks.map((t: any) => t.type);
    expect(types).toEqual(expect.arrayContaining(['video', 'audio', 'text']));
    const videoTrack = content.tracks.find((t: any) => t.type === 'video');
    expect(videoTrack.segments).toHaveLength(3);
    expect(videoTrack.segments.map((g: any) => g.target_timerange.duration)).toEqual([1_200_000, 1_200_000, 1_200_000]);
    expect(content.duration).toBe(3_600_000);
    for (const m of [...content.materials.videos, ...content.materials.audios]) {
      const rel = String(m.path).split('_##/')[1];
      expect(listing).toContain(`${folder}/${rel}`);
    }
    const texts = content.materials.texts.map((t: any) => JSON.parse(t.content).text);
    expect(texts).toEqual(lines.map((l) => l.text));
  }, 180_000);

  it('a re-export after one shot changed re-renders that shot only, and each export is a version in the history', async () => {
    const before = invocationCount();
    const same = await run('export');
    expect(same.done.output.segments).toEqual({ rendered: 0, reused: 3 });
    expect(ofType(same.events, 'task').filter((e) => e.data.status === 'cached')).toHaveLength(3);
    const unchangedRuns = invocationCount() - before;

    expect((await run('video', { seconds: CLIP_S, recolour: [2] })).done.type).toBe('done');
    const mid = invocationCount();
    const changed = await run('export');
    expect(changed.done.output.segments).toEqual({ rendered: 1, reused: 2 });
    const taskEnds = ofType(changed.events, 'task').filter((e) => ['cached', 'succeeded'].includes(e.data.status));
    expect(taskEnds.find((e) => e.data.shot_id === shots[1].id)!.data.status).toBe('succeeded');
    expect(taskEnds.filter((e) => e.data.status === 'cached').map((e) => e.data.shot_id).sort()).toEqual([shots[0].id, shots[2].id].sort());
    // Exactly one more ffmpeg than an export with nothing changed: that shot's segment.
    expect(invocationCount() - mid).toBe(unchangedRuns + 1);
    expect(changed.done.output.video.media_id).not.toBe(first.output.video.media_id);

    const history = (await admin.get(`/api/v1/projects/${projectId}/stages/export/runs/`)).body;
    const ids = (history.results ?? history).map((r: any) => r.id);
    for (const id of [first.id, same.id, changed.id]) expect(ids).toContain(id);
  }, 180_000);

  it('a cancel mid-export kills ffmpeg, stores nothing and leaves the previous export in place', async () => {
    const previous = (await admin.get(`/api/v1/projects/${projectId}/stages/`)).body.find((s: any) => s.stage_type === 'export');
    expect(previous.status).toBe('completed');
    // Segments forced to render again, so there is ffmpeg work to cancel.
    await admin.patch(`/api/v1/projects/${projectId}/stages/export/settings/`, { subtitle_mode: 'burn' });
    const count = await mediaCount();
    const res = await admin.post(`/api/v1/projects/${projectId}/stages/export/runs/`, { input: { shot_ids: shots.map((s) => s.id) } });
    expect(res.status).toBe(202);
    await follow(`${studio.url}/api/v1/runs/${res.body.id}/events`, {
      cookie: admin.cookie,
      timeoutMs: 60_000,
      stopWhen: (events) => events.some((e) => e.data.type === 'task' && e.data.status === 'running') && liveChildPids().length > 0,
    });
    expect(liveChildPids().length).toBeGreaterThan(0);
    const cancelled = await admin.post(`/api/v1/runs/${res.body.id}/cancel/`);
    expect(cancelled.body.status).toBe('cancelled');
    const end = await follow(`${studio.url}/api/v1/runs/${res.body.id}/events`, { cookie: admin.cookie, timeoutMs: 60_000 });
    expect(end.events.at(-1)!.data.type).not.toBe('done');
    for (let i = 0; i < 50 && liveChildPids().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(liveChildPids()).toEqual([]);
    expect(await mediaCount()).toBe(count);
    const after = (await admin.get(`/api/v1/projects/${projectId}/stages/`)).body.find((s: any) => s.stage_type === 'export');
    expect(after.output.video.media_id).toBe(previous.output.video.media_id);
    const kept = await fetch(`${studio.url}${after.output.video.url}`, { headers: { cookie: admin.cookie } });
    expect(kept.status).toBe(200);
    expect((await kept.arrayBuffer()).byteLength).toBe(previous.output.video.size_bytes);
  }, 180_000);
});
