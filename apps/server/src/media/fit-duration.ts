import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';

export interface FitClipOptions {
  input: string;
  out: string;
  duration_s: number;
  /** Output frame rate; the source's when unset. With it the frame count is exact. */
  fps?: number;
  /** Both or neither: the clip is scaled to cover and centre-cropped to this size. */
  width?: number;
  height?: number;
  signal: AbortSignal;
}

/**
 * Makes a vendor clip exactly the shot's length (±1 frame): a longer clip is trimmed, a shorter one
 * holds its last frame (tpad clone). One pass, no probe: the pad is always added and the output cut
 * at the duration, which covers both cases. Audio is dropped (narration is mixed at export).
 * Written to a temp file beside `out`, then renamed, so `out` is never half-written.
 */
export async function fitClipDuration(ffmpegPath: string, options: FitClipOptions): Promise<void> {
  const { input, out, duration_s, fps, width, height, signal } = options;
  if (!(duration_s > 0)) throw new RangeError(`duration_s must be positive, got ${duration_s}`);
  const filters: string[] = [];
  if (width && height) filters.push(`scale=${width}:${height}:force_original_aspect_ratio=increase`, `crop=${width}:${height}`, 'setsar=1');
  if (fps) filters.push(`fps=${fps}`);
  filters.push(`tpad=stop_mode=clone:stop_duration=${duration_s.toFixed(3)}`);
  const frameLimit = fps ? ['-frames:v', String(Math.max(1, Math.round(duration_s * fps)))] : [];
  const tmp = path.join(path.dirname(out), `.${path.basename(out)}.${randomBytes(6).toString('hex')}.tmp.mp4`);
  const args = [
    '-hide_banner', '-loglevel', 'error', '-nostdin',
    '-i', input,
    '-an', '-vf', filters.join(','),
    '-t', duration_s.toFixed(3), ...frameLimit,
    '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '20', '-pix_fmt', 'yuv420p', '-movflags', '+faststart',
    '-y', tmp,
  ];
  try {
    // A few seconds of small video encode in well under this; the bound only catches a stuck child.
    await runFfmpeg(ffmpegPath, args, signal, 60_000 + duration_s * 10_000);
    await rename(tmp, out);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

function runFfmpeg(ffmpegPath: string, args: string[], signal: AbortSignal, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error('ffmpeg not started: aborted'));
    const child = spawn(ffmpegPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let killedFor: string | undefined;
    const kill = (why: string) => {
      killedFor = why;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => kill(`timed out after ${timeoutMs} ms`), timeoutMs);
    const onAbort = () => kill('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-4000)));
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    };
    child.on('error', (err) => {
      done();
      reject(err);
    });
    child.on('close', (code) => {
      done();
      if (code === 0 && !killedFor) return resolve();
      reject(new Error(`ffmpeg ${killedFor ?? `exited with ${code}`}: ${stderr.trim().split('\n').slice(-5).join('\n')}`));
    });
  });
}
