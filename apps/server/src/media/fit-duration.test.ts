import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { fitClipDuration } from './fit-duration.ts';

const run = promisify(execFile);
let dir: string;

async function makeClip(name: string, seconds: number, fps = 24): Promise<string> {
  const file = path.join(dir, name);
  await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', `testsrc2=size=180x320:rate=${fps}:duration=${seconds}`, '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-y', file]);
  return file;
}

async function probe(file: string) {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-count_frames', '-show_entries', 'stream=width,height,nb_read_frames,r_frame_rate:format=duration', '-of', 'json', file]);
  const json = JSON.parse(stdout) as { streams: { width: number; height: number; nb_read_frames: string; r_frame_rate: string }[]; format: { duration: string } };
  return { ...json.streams[0], frames: Number(json.streams[0].nb_read_frames), duration: Number(json.format.duration) };
}

/** Mean absolute difference between two frames (0 = identical), via ffmpeg's own comparison. */
async function frameDifference(file: string, t1: number, t2: number): Promise<number> {
  const grab = async (t: number) => {
    const { stdout } = await run('ffmpeg', ['-v', 'error', '-ss', String(t), '-i', file, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'gray', '-s', '18x32', 'pipe:1'], {
      encoding: 'buffer',
    });
    return stdout as unknown as Buffer;
  };
  const [a, b] = await Promise.all([grab(t1), grab(t2)]);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'fit-duration-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('fitClipDuration', () => {
  test('a 5 s vendor clip is trimmed to a 3.2 s shot, within one frame', async () => {
    const input = await makeClip('five.mp4', 5);
    const out = path.join(dir, 'five-fitted.mp4');
    await fitClipDuration('ffmpeg', { input, out, duration_s: 3.2, fps: 24, signal: new AbortController().signal });
    const info = await probe(out);
    expect(Math.abs(info.duration - 3.2)).toBeLessThanOrEqual(1 / 24 + 1e-3);
    expect(info.frames).toBe(Math.round(3.2 * 24));
    // The picture still moves up to the end: it is the source, cut, not a held frame.
    expect(await frameDifference(out, 2.5, 3.1)).toBeGreaterThan(1);
  });

  test('a 2 s vendor clip holds its last frame to reach 3.2 s', async () => {
    const input = await makeClip('two.mp4', 2);
    const out = path.join(dir, 'two-fitted.mp4');
    await fitClipDuration('ffmpeg', { input, out, duration_s: 3.2, fps: 24, signal: new AbortController().signal });
    const info = await probe(out);
    expect(Math.abs(info.duration - 3.2)).toBeLessThanOrEqual(1 / 24 + 1e-3);
    expect(info.frames).toBe(77);
    // After the source ends the frame is frozen; before it, the pattern moves.
    expect(await frameDifference(out, 2.3, 3.1)).toBeLessThan(0.5);
    expect(await frameDifference(out, 0.5, 1.5)).toBeGreaterThan(1);
  });

  test('a size and frame rate are applied on the way, and no temp file is left', async () => {
    const input = await makeClip('wide.mp4', 2, 30);
    const out = path.join(dir, 'small.mp4');
    await fitClipDuration('ffmpeg', { input, out, duration_s: 1.5, fps: 25, width: 180, height: 180, signal: new AbortController().signal });
    const info = await probe(out);
    expect([info.width, info.height, info.r_frame_rate]).toEqual([180, 180, '25/1']);
    expect(info.frames).toBe(Math.round(1.5 * 25));
    expect((await readdir(dir)).filter((f) => f.includes('.tmp.'))).toEqual([]);
  });

  test('an aborted fit rejects and leaves neither the output nor a temp file', async () => {
    const input = await makeClip('abort.mp4', 2);
    const out = path.join(dir, 'aborted.mp4');
    const controller = new AbortController();
    const fitting = fitClipDuration('ffmpeg', { input, out, duration_s: 60, fps: 24, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await expect(fitting).rejects.toThrow(/aborted/);
    const left = await readdir(dir);
    expect(left).not.toContain('aborted.mp4');
    expect(left.filter((f) => f.includes('.tmp.'))).toEqual([]);
  });
});
