import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DRAFT_PATH_PLACEHOLDER, writeJianyingDraft } from './jianying-draft.ts';
import { makeClip, makeTone, tools } from './test-media.ts';

let dir: string;
let clips: string[];
let voice: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'draft-test-'));
  clips = [
    makeClip(path.join(dir, 'a.mp4'), { width: 360, height: 640, fps: 30, seconds: 2 }),
    // Shorter than its shot.
    makeClip(path.join(dir, 'b.mp4'), { width: 320, height: 240, fps: 25, seconds: 1, color: 'red' }),
  ];
  voice = makeTone(path.join(dir, 'voice.wav'), { hz: 440, seconds: 1.5 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Reads the zip with the system's Info-ZIP, not with our own writer's library. */
function zipEntries(zip: string): Map<string, number> {
  const r = spawnSync('unzip', ['-Z', '-l', zip], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  const entries = new Map<string, number>();
  for (const line of r.stdout.split('\n')) {
    // -rw-r--r--  2.0 unx     1234 b-      1234 stor 24-Jan-01 00:00 name
    const m = /^\S+\s+\S+\s+\S+\s+(\d+)\s+\S+\s+\d+\s+\S+\s+\S+\s+\S+\s+(.+)$/.exec(line);
    if (m) entries.set(m[2], Number(m[1]));
  }
  return entries;
}

function unzipJson(zip: string, entry: string): any {
  const r = spawnSync('unzip', ['-p', zip, entry], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout);
}

describe('writeJianyingDraft', () => {
  const subtitles = [
    { text: '从前有一座山。', start_s: 0.2, end_s: 1.8 },
    { text: '山里住着一只🦌。', start_s: 2.1, end_s: 3.9 },
  ];

  test('a zipped draft folder whose tracks, materials and µs times match the shots and subtitle lines', async () => {
    const out = path.join(dir, 'draft.zip');
    const result = await writeJianyingDraft(
      {
        out,
        name: '山中故事: 第1集',
        width: 360,
        height: 640,
        fps: 30,
        shots: [
          { clip: clips[0], duration_s: 2, narration: voice },
          { clip: clips[1], duration_s: 2, narration: voice, narration_duration_s: 1.5 },
        ],
        subtitles,
      },
      tools,
    );
    const folder = '山中故事_ 第1集';
    expect(result.folder).toBe(folder);
    const entries = zipEntries(out);
    expect([...entries.keys()].sort()).toEqual(result.files.slice().sort());
    const content = unzipJson(out, `${folder}/draft_content.json`);
    const meta = unzipJson(out, `${folder}/draft_meta_info.json`);

    expect(content.duration).toBe(4_000_000);
    expect(content.fps).toBe(30);
    expect(content.canvas_config).toEqual({ width: 360, height: 640, ratio: 'original' });
    expect(meta).toMatchObject({ draft_id: result.draft_id, draft_name: folder, tm_duration: 4_000_000 });
    expect(content.id).toBe(result.draft_id);
    expect(result.draft_id).toMatch(/^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/);

    const byType = (t: string) => content.tracks.find((tr: any) => tr.type === t);
    expect(content.tracks.map((t: any) => t.type)).toEqual(['video', 'audio', 'text']);

    const videoSegs = byType('video').segments;
    expect(videoSegs.map((s: any) => s.target_timerange)).toEqual([{ start: 0, duration: 2_000_000 }, { start: 2_000_000, duration: 2_000_000 }]);
    const videos = content.materials.videos;
    expect(videos.map((v: any) => [v.type, v.width, v.height])).toEqual([['video', 360, 640], ['video', 320, 240]]);
    expect(Math.abs(videos[0].duration - 2_000_000)).toBeLessThan(50_000);
    expect(Math.abs(videos[1].duration - 1_000_000)).toBeLessThan(50_000);
    expect(videoSegs.map((s: any) => s.material_id)).toEqual(videos.map((v: any) => v.id));
    // The full first clip at speed 1; the 1 s clip slowed to fill its 2 s shot.
    expect(videoSegs[0]).toMatchObject({ speed: 1, source_timerange: { start: 0, duration: 2_000_000 } });
    expect(videoSegs[1].source_timerange.duration).toBe(videos[1].duration);
    expect(videoSegs[1].speed).toBeCloseTo(videos[1].duration / 2_000_000, 6);
    const speedIds = new Set(content.materials.speeds.map((s: any) => s.id));
    const canvasIds = new Set(content.materials.canvases.map((s: any) => s.id));
    for (const s of videoSegs) {
      expect(speedIds.has(s.extra_material_refs[0])).toBe(true);
      expect(canvasIds.has(s.extra_material_refs[1])).toBe(true);
      expect(s.clip.scale).toEqual({ x: 1, y: 1 });
    }

    const audioSegs = byType('audio').segments;
    expect(audioSegs.map((s: any) => s.target_timerange.start)).toEqual([0, 2_000_000]);
    expect(audioSegs[1].target_timerange.duration).toBe(1_500_000);
    expect(content.materials.audios.map((a: any) => a.type)).toEqual(['extract_music', 'extract_music']);
    expect(Math.abs(content.materials.audios[0].duration - 1_500_000)).toBeLessThan(30_000);

    // Every referenced file is inside the zip, under the placeholder the editor replaces with the folder.
    for (const m of [...videos, ...content.materials.audios]) {
      expect(m.path.startsWith(`${DRAFT_PATH_PLACEHOLDER}/`)).toBe(true);
      const entry = `${folder}/${m.path.slice(DRAFT_PATH_PLACEHOLDER.length + 1)}`;
      expect(entries.has(entry)).toBe(true);
    }
    expect(entries.get(`${folder}/Resources/local/shot-01.mp4`)).toBe(readFileSync(clips[0]).length);

    // One editable text segment per subtitle line, text and times as given.
    const textSegs = byType('text').segments;
    const texts = textSegs.map((s: any) => {
      const material = content.materials.texts.find((t: any) => t.id === s.material_id);
      const body = JSON.parse(material.content);
      expect(body.styles[0].range).toEqual([0, [...body.text].length]);
      return { text: body.text, start_s: s.target_timerange.start / 1e6, end_s: (s.target_timerange.start + s.target_timerange.duration) / 1e6 };
    });
    expect(texts).toEqual(subtitles);
  });

  test('refuses a draft without shots and writes nothing', async () => {
    const out = path.join(dir, 'empty.zip');
    await expect(writeJianyingDraft({ out, name: 'x', width: 360, height: 640, fps: 30, shots: [], subtitles: [] }, tools)).rejects.toThrow(/at least one shot/);
    expect(spawnSync('ls', [dir], { encoding: 'utf8' }).stdout).not.toMatch(/empty\.zip/);
  });
});
