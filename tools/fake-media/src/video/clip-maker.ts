import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runTool } from '../av-tools.ts';

export interface ClipSpec {
  duration_s: number;
  width: number;
  height: number;
  fps: number;
}

/**
 * Real H.264 MP4s for the simulated vendors to hand out, made once per spec and kept in memory.
 * A moving test pattern (not a still) so that a client's trim or last-frame hold is observable.
 */
export class ClipMaker {
  private readonly clips = new Map<string, Promise<Buffer>>();

  constructor(private readonly ffmpegPath = 'ffmpeg') {}

  clip(spec: ClipSpec): Promise<Buffer> {
    const key = `${spec.duration_s}/${spec.width}x${spec.height}@${spec.fps}`;
    let clip = this.clips.get(key);
    if (!clip) {
      clip = this.render(spec);
      // A failed render is not cached: the next task tries again.
      clip.catch(() => this.clips.delete(key));
      this.clips.set(key, clip);
    }
    return clip;
  }

  private async render({ duration_s, width, height, fps }: ClipSpec): Promise<Buffer> {
    const dir = await mkdtemp(path.join(tmpdir(), 'fake-video-'));
    try {
      const out = path.join(dir, 'clip.mp4');
      await runTool(
        this.ffmpegPath,
        [
          '-hide_banner', '-loglevel', 'error',
          '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}:duration=${duration_s}`,
          '-c:v', 'libx264', '-preset', 'ultrafast', '-crf', '32', '-pix_fmt', 'yuv420p', '-movflags', '+faststart',
          '-y', out,
        ],
        { timeoutMs: 120_000 },
      );
      return await readFile(out);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
