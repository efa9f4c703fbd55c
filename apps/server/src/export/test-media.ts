/**
 * Small real media for the export tests and the bench: clips from lavfi sources, tones, a CJK ASS file.
 * Not a test itself (no `.test.ts`), imported by them.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { stringifySync } from 'subtitle';

export const FFMPEG = process.env.FFMPEG_PATH ?? 'ffmpeg';
export const FFPROBE = process.env.FFPROBE_PATH ?? 'ffprobe';
export const tools = { ffmpeg: FFMPEG, ffprobe: FFPROBE };

export function ffmpegSync(args: string[]): string {
  const r = spawnSync(FFMPEG, ['-hide_banner', '-nostdin', '-y', ...args], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`ffmpeg ${args.join(' ')} failed: ${r.stderr.slice(-800)}`);
  return r.stderr;
}

/** A clip with its own size and rate: `testsrc2` (moving pattern) or a solid colour. */
export function makeClip(file: string, o: { width: number; height: number; fps: number; seconds: number; color?: string; preset?: string }): string {
  const source = o.color
    ? `color=c=${o.color}:s=${o.width}x${o.height}:r=${o.fps}:d=${o.seconds}`
    : `testsrc2=s=${o.width}x${o.height}:r=${o.fps}:d=${o.seconds}`;
  ffmpegSync(['-f', 'lavfi', '-i', source, '-c:v', 'libx264', '-preset', o.preset ?? 'ultrafast', '-pix_fmt', 'yuv420p', file]);
  return file;
}

/** A tone standing in for speech or music (deterministic loudness). */
export function makeTone(file: string, o: { hz: number; seconds: number; volume?: number }): string {
  ffmpegSync(['-f', 'lavfi', '-i', `sine=frequency=${o.hz}:sample_rate=48000:duration=${o.seconds}`, '-af', `volume=${o.volume ?? 0.5}`, '-c:a', 'pcm_s16le', file]);
  return file;
}

export function assTime(s: number): string {
  const cs = Math.round(s * 100);
  const h = Math.floor(cs / 360000);
  const m = Math.floor((cs % 360000) / 6000);
  const sec = Math.floor((cs % 6000) / 100);
  return `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}.${String(cs % 100).padStart(2, '0')}`;
}

export function writeAss(file: string, o: { width: number; height: number; lines: { text: string; start_s: number; end_s: number }[] }): string {
  const fontSize = Math.round(o.height * 0.055);
  const text = [
    '[Script Info]',
    'ScriptType: v4.00+',
    `PlayResX: ${o.width}`,
    `PlayResY: ${o.height}`,
    'WrapStyle: 0',
    '',
    '[V4+ Styles]',
    'Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding',
    `Style: Default,Noto Sans CJK SC,${fontSize},&H00FFFFFF,&H000000FF,&H00000000,&H64000000,0,0,0,0,100,100,0,0,1,2,0,2,20,20,${Math.round(o.height * 0.08)},1`,
    '',
    '[Events]',
    'Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text',
    ...o.lines.map((l) => `Dialogue: 0,${assTime(l.start_s)},${assTime(l.end_s)},Default,,0,0,0,,${l.text}`),
    '',
  ].join('\n');
  writeFileSync(file, text);
  return file;
}

export function writeSrt(file: string, lines: { text: string; start_s: number; end_s: number }[]): string {
  const cues = lines.map((l) => ({ type: 'cue' as const, data: { start: Math.round(l.start_s * 1000), end: Math.round(l.end_s * 1000), text: l.text } }));
  writeFileSync(file, stringifySync(cues, { format: 'SRT' }));
  return file;
}

/** Integrated loudness (LUFS) of a file's audio, measured by ffmpeg's EBU R128 scanner. */
export function integratedLufs(file: string): number {
  const log = ffmpegSync(['-i', file, '-map', '0:a', '-af', 'ebur128', '-f', 'null', '-']);
  const m = /Integrated loudness:\s*\n\s*I:\s*(-?[\d.]+) LUFS/.exec(log);
  if (!m) throw new Error(`no integrated loudness in: ${log.slice(-500)}`);
  return Number(m[1]);
}

export function frameAt(video: string, t: number, png: string): string {
  ffmpegSync(['-ss', t.toFixed(3), '-i', video, '-frames:v', '1', '-update', '1', png]);
  return png;
}
