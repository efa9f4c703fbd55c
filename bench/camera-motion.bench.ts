/**
 * Local camera motion render speed: a clip per movement type and size, render time against the
 * clip's own length (below 1× = faster than real time). CPU is ffmpeg's user+system time read from
 * /proc (reaped children), so a busy shared machine shows in the wall column, less in the CPU one.
 *
 *   node --import tsx bench/camera-motion.bench.ts [--seconds 10] [--sizes 720x1280,1080x1920] [--types zoom_in,pan_left]
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { renderCameraMotion, type MovementTypeName } from '../apps/server/src/media/camera-motion.ts';
import { findMediaTools } from '../apps/server/src/media/ffmpeg.ts';

const ALL: MovementTypeName[] = ['static', 'zoom_in', 'zoom_out', 'pan_left', 'pan_right', 'tilt_up', 'tilt_down', 'dolly_in', 'dolly_out'];

/** CPU seconds of this process's finished children (Linux: /proc/self/stat cutime + cstime). */
async function childCpuS(): Promise<number> {
  const stat = await readFile('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the command name start at field 3; cutime and cstime are fields 16 and 17.
  return (Number(fields[16 - 3]) + Number(fields[17 - 3])) / 100;
}

const { values } = parseArgs({ options: { seconds: { type: 'string' }, sizes: { type: 'string' }, types: { type: 'string' } } });
const seconds = Number(values.seconds ?? 10);
const sizes = (values.sizes ?? '720x1280,1080x1920').split(',').map((s) => s.split('x').map(Number) as [number, number]);
const types = (values.types?.split(',') as MovementTypeName[] | undefined) ?? ALL;
const fps = 25;

const tools = findMediaTools(process.env);
if (!tools) throw new Error('install ffmpeg: apt-get install -y ffmpeg');
const dir = await mkdtemp(path.join(tmpdir(), 'camera-motion-bench-'));
try {
  // A photo-like 1536×2048 picture (what image models return), noisy so the encoder has real work.
  const image = path.join(dir, 'picture.jpg');
  // sharp's type asks for a background; with noise it is not used.
  const noise = await sharp({ create: { width: 1536, height: 2048, channels: 3, background: '#000000', noise: { type: 'gaussian', mean: 110, sigma: 40 } } })
    .blur(2)
    .png()
    .toBuffer();
  await sharp(noise).jpeg({ quality: 90 }).toFile(image);

  const rows: string[][] = [];
  for (const [width, height] of sizes) {
    for (const type of types) {
      const out = path.join(dir, `${type}-${width}x${height}.mp4`);
      const cpu0 = await childCpuS();
      const t0 = performance.now();
      await renderCameraMotion(tools, {
        image,
        out,
        movement: { movement_type: type, params: { speed: 'medium', intensity: 0.7, easing: 'ease_in_out' } },
        width,
        height,
        fps,
        duration_s: seconds,
      });
      const wall = (performance.now() - t0) / 1000;
      const cpu = (await childCpuS()) - cpu0;
      rows.push([`${width}×${height}`, type, wall.toFixed(1), (wall / seconds).toFixed(2), cpu.toFixed(1), (cpu / 2 / seconds).toFixed(2)]);
      console.error(rows.at(-1)!.join('  '));
      await rm(out);
    }
  }
  const head = ['size', 'movement', 'wall s', 'wall / real', 'ffmpeg CPU s', 'CPU/2 cores / real'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(`\nCamera motion: ${seconds} s clips at ${fps} fps, x264 veryfast crf 18; real time = ${seconds} s.\n`);
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  console.log('\n"CPU/2 cores / real" is what an idle 2-core machine would approach; "wall / real" is what this run saw.');
} finally {
  await rm(dir, { recursive: true, force: true });
}
