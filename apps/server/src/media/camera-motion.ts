/**
 * Local camera motion (本地运镜, DESIGN §9): one still image → an H.264 clip that zooms, pans or tilts
 * over it, rendered with ffmpeg on this machine. Free, and the default clip method.
 *
 * Smoothness: ffmpeg's zoompan crops at whole pixels of its input, so slow moves step and shake
 * (the well-known zoompan jitter). Here the `perspective` filter samples the source with
 * interpolation at 1/256-pixel precision: each frame's window (any fractional position and size) is
 * mapped onto the output, so a move of 0.3 px per frame is rendered as exactly that. Its per-frame cost
 * (one coordinate table per frame) measured lower than the alternatives tried: zoompan on a 4× upscaled
 * source (16× the pixels per frame) and per-frame affine resampling in libvips through sharp (~2× the
 * CPU per 1080×1920 frame). The picture is fitted once, then the same decoded frame is looped inside
 * ffmpeg, so nothing is decoded or colour-converted per frame.
 *
 * Conventions (what the camera does, as a viewer sees it):
 *   pan_left   the camera turns left: the window slides left over the picture, content moves RIGHT;
 *   pan_right  the opposite, content moves left;
 *   tilt_up    the camera tilts up: the window slides up, content moves DOWN; tilt_down the opposite;
 *   zoom_in    the window shrinks about the centre (content grows); zoom_out the reverse;
 *   dolly_in/out  a stronger zoom (up to 1.8× instead of 1.5×) — a camera moving towards the subject
 *              reads as a bigger, eased push; no parallax is synthesised from a single flat image.
 * Amount: `intensity` (0..1) scales the zoom factor and the pan distance; `speed` scales it a little
 * (slow ×0.85, medium ×1, fast ×1.15; a number s in 0..1 gives ×(0.85 + 0.3·s)), since a shot's
 * duration is fixed by its narration and a faster move can only mean a longer one. `easing` shapes the
 * time curve (sine curves). Zoom is interpolated geometrically so the apparent speed is constant.
 */
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { sharp } from './sharp.ts';
import { renderToFile, runFfmpeg, type MediaTools } from './ffmpeg.ts';

export type MovementTypeName = 'static' | 'zoom_in' | 'zoom_out' | 'pan_left' | 'pan_right' | 'tilt_up' | 'tilt_down' | 'dolly_in' | 'dolly_out';
export type Easing = 'linear' | 'ease_in' | 'ease_out' | 'ease_in_out';

export interface CameraMovement {
  movement_type: MovementTypeName;
  params: { speed: 'slow' | 'medium' | 'fast' | number; intensity: number; easing: Easing };
}

export interface CameraMotionOptions {
  /** A PNG/JPEG/WebP file; EXIF orientation is honoured. */
  image: string;
  /** The .mp4 to write (atomically). */
  out: string;
  movement: CameraMovement;
  /** Even numbers (H.264 4:2:0). */
  width: number;
  height: number;
  fps: number;
  duration_s: number;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
  /** x264 speed/size trade-off; clips are re-encoded at export, so a fast preset is the default. */
  encoderPreset?: 'ultrafast' | 'superfast' | 'veryfast' | 'faster' | 'fast' | 'medium';
  timeoutMs?: number;
}

export interface CameraMotionResult {
  frames: number;
  duration_s: number;
}

const MAX_ZOOM = 1.5;
const MAX_DOLLY_ZOOM = 1.8;
/** How far a pan/tilt zooms in to have room to travel; the travel is the margin this leaves. */
const MAX_PAN_ZOOM = 1.4;

/** The part of the picture on screen: centre as fractions of the picture, zoom 1 = all of it. */
interface Window {
  zoom: number;
  cx: number;
  cy: number;
}

function speedFactor(speed: CameraMovement['params']['speed']): number {
  if (typeof speed === 'number') return 0.85 + 0.3 * Math.min(1, Math.max(0, speed));
  return { slow: 0.85, medium: 1, fast: 1.15 }[speed] ?? 1;
}

/** Start and end windows of a movement. */
export function movementWindows(movement: CameraMovement): [Window, Window] {
  const amount = Math.min(1, Math.max(0, movement.params.intensity) * speedFactor(movement.params.speed));
  const whole: Window = { zoom: 1, cx: 0.5, cy: 0.5 };
  const zoomed = (max: number): Window => ({ zoom: 1 + (max - 1) * amount, cx: 0.5, cy: 0.5 });
  const panZoom = 1 + (MAX_PAN_ZOOM - 1) * amount;
  // The window's centre can travel between half a window from either edge.
  const near = 1 / (2 * panZoom);
  const far = 1 - near;
  const at = (cx: number, cy: number): Window => ({ zoom: panZoom, cx, cy });
  switch (movement.movement_type) {
    case 'static':
      return [whole, whole];
    case 'zoom_in':
      return [whole, zoomed(MAX_ZOOM)];
    case 'zoom_out':
      return [zoomed(MAX_ZOOM), whole];
    case 'dolly_in':
      return [whole, zoomed(MAX_DOLLY_ZOOM)];
    case 'dolly_out':
      return [zoomed(MAX_DOLLY_ZOOM), whole];
    case 'pan_left':
      return [at(far, 0.5), at(near, 0.5)];
    case 'pan_right':
      return [at(near, 0.5), at(far, 0.5)];
    case 'tilt_up':
      return [at(0.5, far), at(0.5, near)];
    case 'tilt_down':
      return [at(0.5, near), at(0.5, far)];
  }
}

/** An ffmpeg expression of the eased progress u(p), p in 0..1. */
function easingExpr(easing: Easing, p: string): string {
  switch (easing) {
    case 'linear':
      return p;
    case 'ease_in':
      return `(1-cos(${p}*PI/2))`;
    case 'ease_out':
      return `sin(${p}*PI/2)`;
    case 'ease_in_out':
      return `((1-cos(${p}*PI))/2)`;
  }
}

const num = (x: number) => Number(x.toPrecision(12)).toString();

/** The `perspective` filter that moves the window from `from` to `to` over `frames` frames. */
function perspectiveFilter(from: Window, to: Window, easing: Easing, frames: number): string {
  // The filter counts input frames from 1 (`in`); the last frame reaches the end exactly.
  const p = frames > 1 ? `clip((in-1)/${frames - 1},0,1)` : '0';
  const u = easingExpr(easing, p);
  const lerp = (a: number, b: number) => (a === b ? num(a) : `(${num(a)}+${num(b - a)}*${u})`);
  // Geometric zoom: equal ratios per unit of time read as constant speed.
  const zoom = from.zoom === to.zoom ? num(from.zoom) : `(${num(from.zoom)}*exp(${num(Math.log(to.zoom / from.zoom))}*${u}))`;
  const left = `(W*${lerp(from.cx, to.cx)}-W/(2*${zoom}))`;
  const right = `(W*${lerp(from.cx, to.cx)}+W/(2*${zoom}))`;
  const top = `(H*${lerp(from.cy, to.cy)}-H/(2*${zoom}))`;
  const bottom = `(H*${lerp(from.cy, to.cy)}+H/(2*${zoom}))`;
  // Corners in the source (sense=source) sent to the output's corners: TL, TR, BL, BR.
  const coords = { x0: left, y0: top, x1: right, y1: top, x2: left, y2: bottom, x3: right, y3: bottom };
  const args = Object.entries(coords).map(([k, v]) => `${k}='${v}'`);
  return `perspective=${args.join(':')}:sense=source:interpolation=linear:eval=frame`;
}

export async function renderCameraMotion(tools: MediaTools, o: CameraMotionOptions): Promise<CameraMotionResult> {
  const { width, height, fps } = o;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 2 || height < 2 || width % 2 || height % 2) {
    throw new RangeError(`width and height must be even positive integers, not ${width}×${height}`);
  }
  if (!(fps > 0 && fps <= 120)) throw new RangeError(`fps must be in (0, 120], not ${fps}`);
  if (!(o.duration_s > 0)) throw new RangeError(`duration_s must be positive, not ${o.duration_s}`);
  const frames = Math.max(1, Math.round(o.duration_s * fps));

  // Fit (cover) once with libvips: it honours EXIF orientation and downsamples with lanczos, which
  // ffmpeg's image decoders do not do for us. Raw RGB avoids a PNG encode and decode.
  const fitted = await sharp(o.image)
    .rotate()
    .flatten({ background: '#000000' })
    .resize(width, height, { fit: 'cover', position: 'centre', kernel: 'lanczos3' })
    .removeAlpha()
    .raw()
    .toBuffer();
  o.signal?.throwIfAborted();
  const source = `${o.out}.src-${randomBytes(6).toString('hex')}.rgb`;
  await writeFile(source, fitted);
  try {
    const [from, to] = movementWindows(o.movement);
    const filters = [
      'scale=out_color_matrix=bt709:out_range=tv',
      'format=yuv420p',
      // One decoded frame, repeated: per-frame work is only the move and the encode.
      `loop=loop=${frames - 1}:size=1:start=0`,
      `setpts=N/(${num(fps)}*TB)`,
    ];
    const still = from.zoom === to.zoom && from.cx === to.cx && from.cy === to.cy;
    if (!still || from.zoom !== 1) filters.push(perspectiveFilter(from, to, o.movement.params.easing, frames));
    filters.push('setsar=1');
    // -framerate, -r, setpts: three ways of saying the same rate so no frame is dropped or duplicated.
    const args = [
      ...['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-video_size', `${width}x${height}`, '-framerate', num(fps), '-i', source],
      ...['-vf', filters.join(','), '-frames:v', String(frames), '-r', num(fps), '-an'],
      ...['-c:v', 'libx264', '-preset', o.encoderPreset ?? 'veryfast', '-crf', '18', '-pix_fmt', 'yuv420p'],
      ...['-colorspace', 'bt709', '-color_primaries', 'bt709', '-color_trc', 'bt709', '-color_range', 'tv'],
      ...['-movflags', '+faststart', '-f', 'mp4'],
    ];
    await renderToFile(o.out, (tmp) =>
      runFfmpeg(tools, [...args, tmp], { signal: o.signal, timeoutMs: o.timeoutMs, durationS: frames / fps, onProgress: o.onProgress }),
    );
  } finally {
    await rm(source, { force: true });
  }
  return { frames, duration_s: frames / fps };
}
