import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  FfmpegError,
  ffmpegInvocationCount,
  findMediaTools,
  liveMediaProcessCount,
  probe,
  renderToFile,
  runFfmpeg,
  type MediaTools,
} from './ffmpeg.ts';

let tools: MediaTools;
let dir: string;

beforeAll(async () => {
  const found = findMediaTools(process.env);
  if (!found) throw new Error('install ffmpeg: apt-get install -y ffmpeg');
  tools = found;
  dir = await mkdtemp(path.join(tmpdir(), 'ffmpeg-runner-'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/**
 * A synthetic clip of `seconds` at 360×640 with a tone, encoded to MP4. `paced` reads the input at its
 * own rate (-re), so ffmpeg reports progress however fast the machine is.
 */
const testClipArgs = (seconds: number, out: string, paced = false) => [
  ...(paced ? ['-re'] : []),
  ...['-f', 'lavfi', '-i', `testsrc2=s=360x640:r=25:d=${seconds}`, '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:d=${seconds}`],
  ...['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', '-f', 'mp4', out],
];

describe('findMediaTools', () => {
  test('finds ffmpeg and ffprobe on PATH, and refuses a configured path that does not exist', () => {
    expect(findMediaTools({ PATH: '/usr/bin' })).toEqual({ ffmpeg: '/usr/bin/ffmpeg', ffprobe: '/usr/bin/ffprobe' });
    expect(findMediaTools({ FFMPEG_PATH: path.join(dir, 'no-ffmpeg'), PATH: '/usr/bin' })).toBeNull();
    expect(findMediaTools({ FFPROBE_PATH: path.join(dir, 'no-ffprobe'), PATH: '/usr/bin' })).toBeNull();
    expect(findMediaTools({ PATH: dir })).toBeNull();
  });
});

describe('runFfmpeg', () => {
  test('reports increasing progress up to 1, renders atomically, and probe reads the result', async () => {
    const out = path.join(dir, 'progress.mp4');
    const fractions: number[] = [];
    const before = ffmpegInvocationCount();
    try {
      await renderToFile(out, (tmp) => runFfmpeg(tools, testClipArgs(2, tmp, true), { durationS: 2, onProgress: (f) => fractions.push(f) }));
    } catch (err) {
      await rm(out, { force: true });
      throw err;
    }
    expect(ffmpegInvocationCount()).toBe(before + 1);
    expect(fractions.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < fractions.length; i++) expect(fractions[i]).toBeGreaterThan(fractions[i - 1]);
    expect(fractions.at(-1)).toBe(1);
    // At least one real report came from ffmpeg itself before the final 1.
    expect(fractions.at(-2)).toBeGreaterThan(0.3);

    const info = await probe(tools, out);
    expect(info.duration_s).toBeCloseTo(2, 1);
    expect(info.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'h264', width: 360, height: 640, fps: 25 });
    expect(info.streams.find((s) => s.codec_type === 'audio')).toMatchObject({ codec_name: 'aac', sample_rate: 48000 });
    expect(await readdir(dir)).toEqual(['progress.mp4']);
    await rm(out);
  });

  test('an abort kills ffmpeg and leaves neither the output nor its temporary file', async () => {
    const out = path.join(dir, 'aborted.mp4');
    const controller = new AbortController();
    const run = renderToFile(out, (tmp) =>
      runFfmpeg(tools, testClipArgs(600, tmp), {
        signal: controller.signal,
        durationS: 600,
        // Abort once ffmpeg is demonstrably writing, so there is a partial file to clean up.
        onProgress: () => controller.abort(),
      }),
    );
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(liveMediaProcessCount()).toBe(0);
    expect(await stat(out).catch(() => null)).toBeNull();
    expect(await readdir(dir)).toEqual([]);
  });

  test('a run past its time limit is killed with an FfmpegError and cleaned up', async () => {
    const out = path.join(dir, 'slow.mp4');
    const run = renderToFile(out, (tmp) => runFfmpeg(tools, ['-re', ...testClipArgs(600, tmp)], { timeoutMs: 500 }));
    await expect(run).rejects.toBeInstanceOf(FfmpegError);
    await expect(run).rejects.toThrow(/timed out/);
    expect(liveMediaProcessCount()).toBe(0);
    expect(await readdir(dir)).toEqual([]);
  });

  test('a failure rejects with an FfmpegError carrying the tail of stderr', async () => {
    const missing = path.join(dir, 'missing.png');
    const err = await runFfmpeg(tools, ['-i', missing, '-f', 'null', '-']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FfmpegError);
    const ffErr = err as FfmpegError;
    expect(ffErr.exitCode).not.toBe(0);
    expect(ffErr.stderr).toContain('No such file or directory');
    expect(ffErr.message).toContain(missing);
  });

  test('a binary that cannot start is an FfmpegError, not a crash', async () => {
    const err = await runFfmpeg({ ffmpeg: path.join(dir, 'nope'), ffprobe: path.join(dir, 'nope') }, ['-version']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FfmpegError);
    expect((err as Error).message).toMatch(/could not start/);
  });
});
