import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { renderCameraMotion, type CameraMovement, type MovementTypeName } from './camera-motion.ts';
import { findMediaTools, probe, runFfmpeg, type MediaTools } from './ffmpeg.ts';

const W = 360;
const H = 640;
const FPS = 25;
const DURATION_S = 2;
const FRAMES = DURATION_S * FPS;

let tools: MediaTools;
let dir: string;
let image: string;

beforeAll(async () => {
  const found = findMediaTools(process.env);
  if (!found) throw new Error('install ffmpeg: apt-get install -y ffmpeg');
  tools = found;
  dir = await mkdtemp(path.join(tmpdir(), 'camera-motion-'));
  // 3:4, so the 9:16 cover fit really crops. A white square off-centre (upper right) is the feature
  // we track; the gradient and the dark disc stay far below its brightness.
  const iw = 900;
  const ih = 1200;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${iw}" height="${ih}">
    <defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#102040"/><stop offset="1" stop-color="#604030"/></linearGradient></defs>
    <rect width="100%" height="100%" fill="url(#g)"/><circle cx="250" cy="800" r="90" fill="#000"/>
    <rect x="${0.6 * iw - 60}" y="${0.38 * ih - 60}" width="120" height="120" fill="#fff"/></svg>`;
  image = path.join(dir, 'picture.png');
  await sharp(Buffer.from(svg)).png().toFile(image);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Every frame of a clip as 8-bit luma. */
async function decodeFrames(file: string): Promise<Buffer[]> {
  const raw = `${file}.gray`;
  await runFfmpeg(tools, ['-i', file, '-f', 'rawvideo', '-pix_fmt', 'gray', raw]);
  const bytes = await readFile(raw);
  await rm(raw);
  const size = W * H;
  expect(bytes.length % size).toBe(0);
  return Array.from({ length: bytes.length / size }, (_, i) => bytes.subarray(i * size, (i + 1) * size));
}

/**
 * The white square: sub-pixel area and centroid. Brightness above the background's brightest luma,
 * linearly, so a partly covered edge pixel counts for its coverage (a steep soft threshold would
 * not be linear in the edge's position and would ripple on a smooth move).
 */
function feature(frame: Buffer) {
  let mass = 0;
  let sx = 0;
  let sy = 0;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const m = Math.min(1, Math.max(0, (frame[y * W + x] - 80) / 175));
      mass += m;
      sx += m * x;
      sy += m * y;
    }
  }
  return { area: mass, x: sx / mass, y: sy / mass };
}

function meanAbsDiff(a: Buffer, b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

function movement(movement_type: MovementTypeName, params: Partial<CameraMovement['params']> = {}): CameraMovement {
  return { movement_type, params: { speed: 'medium', intensity: 0.7, easing: 'ease_in_out', ...params } };
}

async function render(name: string, m: CameraMovement) {
  const out = path.join(dir, `${name}.mp4`);
  const result = await renderCameraMotion(tools, { image, out, movement: m, width: W, height: H, fps: FPS, duration_s: DURATION_S });
  return { out, result, frames: await decodeFrames(out) };
}

const ALL: MovementTypeName[] = ['static', 'zoom_in', 'zoom_out', 'pan_left', 'pan_right', 'tilt_up', 'tilt_down', 'dolly_in', 'dolly_out'];

describe('renderCameraMotion', () => {
  const clips = new Map<MovementTypeName, Awaited<ReturnType<typeof render>>>();

  beforeAll(async () => {
    for (const type of ALL) clips.set(type, await render(type, movement(type)));
  }, 60_000);

  test.each(ALL)('%s: H.264 4:2:0 at the asked size and rate, exactly round(duration × fps) frames, no audio, moov first', async (type) => {
    const { out, result, frames } = clips.get(type)!;
    expect(result.frames).toBe(FRAMES);
    expect(frames).toHaveLength(FRAMES);
    const info = await probe(tools, out);
    expect(info.streams).toHaveLength(1);
    const [video] = info.streams;
    expect(video).toMatchObject({ codec_type: 'video', codec_name: 'h264', width: W, height: H, fps: FPS });
    expect(Math.abs(info.duration_s - DURATION_S)).toBeLessThanOrEqual(1 / FPS);
    const head = (await readFile(out)).subarray(0, 64 * 1024).toString('latin1');
    expect(head.indexOf('moov')).toBeGreaterThan(0);
    expect(head.indexOf('moov')).toBeLessThan(head.indexOf('mdat') === -1 ? Infinity : head.indexOf('mdat'));
    const files = await readdir(dir);
    expect(files.filter((f) => f.includes('.part-') || f.includes('.src-'))).toEqual([]);
  });

  test('static holds the picture: first and last frames are the same', () => {
    const { frames } = clips.get('static')!;
    expect(meanAbsDiff(frames[0], frames.at(-1)!)).toBeLessThan(0.5);
  });

  test('moves that start on the whole picture start exactly where static is', () => {
    const still = clips.get('static')!.frames[0];
    for (const type of ['zoom_in', 'dolly_in'] as const) expect(meanAbsDiff(clips.get(type)!.frames[0], still)).toBeLessThan(1);
    for (const type of ['zoom_out', 'dolly_out'] as const) expect(meanAbsDiff(clips.get(type)!.frames.at(-1)!, still)).toBeLessThan(1);
  });

  test('pan_left moves the content right, pan_right left, and neither moves it vertically', () => {
    const shift = (type: MovementTypeName) => {
      const { frames } = clips.get(type)!;
      const [a, b] = [feature(frames[0]), feature(frames.at(-1)!)];
      return { dx: b.x - a.x, dy: b.y - a.y };
    };
    const left = shift('pan_left');
    const right = shift('pan_right');
    expect(left.dx).toBeGreaterThan(30);
    expect(right.dx).toBeLessThan(-30);
    expect(Math.abs(left.dy)).toBeLessThan(3);
    expect(Math.abs(right.dy)).toBeLessThan(3);
  });

  test('tilt_up moves the content down, tilt_down up, and neither moves it sideways', () => {
    const shift = (type: MovementTypeName) => {
      const { frames } = clips.get(type)!;
      const [a, b] = [feature(frames[0]), feature(frames.at(-1)!)];
      return { dx: b.x - a.x, dy: b.y - a.y };
    };
    expect(shift('tilt_up').dy).toBeGreaterThan(50);
    expect(shift('tilt_down').dy).toBeLessThan(-50);
    expect(Math.abs(shift('tilt_up').dx)).toBeLessThan(3);
    expect(Math.abs(shift('tilt_down').dx)).toBeLessThan(3);
  });

  test('zoom_in grows the feature, zoom_out shrinks it, and a dolly goes further than a zoom', () => {
    const growth = (type: MovementTypeName) => {
      const { frames } = clips.get(type)!;
      return feature(frames.at(-1)!).area / feature(frames[0]).area;
    };
    expect(growth('zoom_in')).toBeGreaterThan(1.3);
    expect(growth('zoom_out')).toBeLessThan(1 / 1.3);
    expect(growth('dolly_in')).toBeGreaterThan(growth('zoom_in') * 1.1);
    expect(growth('dolly_out')).toBeLessThan(growth('zoom_out') / 1.1);
  });

  test('intensity 0.2 moves less than intensity 0.8', async () => {
    const pan = async (intensity: number) => {
      const { frames } = await render(`pan-${intensity}`, movement('pan_right', { intensity }));
      return Math.abs(feature(frames.at(-1)!).x - feature(frames[0]).x);
    };
    const zoom = async (intensity: number) => {
      const { frames } = await render(`zoom-${intensity}`, movement('zoom_in', { intensity }));
      return feature(frames.at(-1)!).area / feature(frames[0]).area;
    };
    const [panLow, panHigh, zoomLow, zoomHigh] = [await pan(0.2), await pan(0.8), await zoom(0.2), await zoom(0.8)];
    expect(panLow).toBeGreaterThan(2);
    expect(panHigh).toBeGreaterThan(panLow * 2.5);
    expect(zoomLow).toBeGreaterThan(1.02);
    expect(zoomHigh - 1).toBeGreaterThan((zoomLow - 1) * 2.5);
  });

  /** Largest distance, in pixels, of a series from its least-squares parabola (a smooth path). */
  function wobble(values: number[]): number {
    // Normal equations for v ≈ a + b·t + c·t², t centred and scaled to keep them well conditioned.
    const n = values.length;
    const ts = values.map((_, i) => (2 * i) / (n - 1) - 1);
    const s = [0, 0, 0, 0, 0].map((_, k) => ts.reduce((acc, t) => acc + t ** k, 0));
    const r = [0, 1, 2].map((k) => ts.reduce((acc, t, i) => acc + values[i] * t ** k, 0));
    const m = [
      [s[0], s[1], s[2]],
      [s[1], s[2], s[3]],
      [s[2], s[3], s[4]],
    ];
    const det = (a: number[][]) =>
      a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
    const d = det(m);
    const [a, b, c] = [0, 1, 2].map((col) => det(m.map((row, i) => row.map((x, j) => (j === col ? r[i] : x)))) / d);
    return Math.max(...ts.map((t, i) => Math.abs(values[i] - (a + b * t + c * t * t))));
  }

  /**
   * How steady a move is. Whole-pixel cropping shows as the feature's centroid wobbling off its
   * smooth path by up to a pixel, and as frames that barely change next to frames that jump.
   */
  function steadiness(frames: Buffer[]) {
    const diffs = frames.slice(1).map((f, i) => meanAbsDiff(frames[i], f));
    const sorted = [...diffs].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    const f = frames.map(feature);
    const growthSteps = f.slice(1).map((b, i) => b.area - f[i].area);
    return {
      pathWobblePx: Math.max(wobble(f.map((p) => p.x)), wobble(f.map((p) => p.y))),
      maxOverMedian: sorted.at(-1)! / median,
      minOverMedian: sorted[0] / median,
      growthSteps,
    };
  }

  test('a slow zoom is smooth: every frame moves, none jumps, the feature grows every frame', async () => {
    const { frames } = await render('slow-zoom', movement('zoom_in', { speed: 'slow', intensity: 0.4, easing: 'linear' }));
    const s = steadiness(frames);
    expect(s.pathWobblePx).toBeLessThan(0.2);
    expect(s.maxOverMedian).toBeLessThan(1.8);
    expect(s.minOverMedian).toBeGreaterThan(0.5);
    expect(Math.min(...s.growthSteps)).toBeGreaterThan(0);
  });

  test('a slow, short pan (well under a pixel per frame) follows a smooth path', async () => {
    const { frames } = await render('slow-pan', movement('pan_right', { speed: 'slow', intensity: 0.15, easing: 'linear' }));
    const s = steadiness(frames);
    expect(s.pathWobblePx).toBeLessThan(0.2);
    expect(s.minOverMedian).toBeGreaterThan(0.5);
  });

  test('the steadiness check catches the classic zoompan jitter on the same move', async () => {
    // Control: the same slow zoom through zoompan, which crops at whole pixels. If this passed the
    // check above, the check would prove nothing.
    const fitted = path.join(dir, 'fitted.png');
    await sharp(image).resize(W, H, { fit: 'cover' }).png().toFile(fitted);
    const out = path.join(dir, 'zoompan.mp4');
    const zoom = `pow(${1 + 0.5 * 0.4 * 0.85}\\,on/${FRAMES - 1})`;
    await runFfmpeg(tools, [
      ...['-loop', '1', '-framerate', String(FPS), '-i', fitted],
      ...['-vf', `zoompan=z='${zoom}':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':d=1:s=${W}x${H}:fps=${FPS}`],
      ...['-frames:v', String(FRAMES), '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '18', '-pix_fmt', 'yuv420p', out],
    ]);
    const s = steadiness(await decodeFrames(out));
    expect(s.pathWobblePx).toBeGreaterThan(0.4);
  });
});
