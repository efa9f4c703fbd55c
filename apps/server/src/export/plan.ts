/**
 * What an export is made of, read from the earlier stages' outputs (DESIGN §9 shapes): each shot's
 * picture (its clip, else its chosen image as a still), its length, its narration and subtitle lines.
 * The export stage and the preview both read this, so the preview plays the timeline the export renders.
 * Missing or partial outputs are tolerated: a shot without a picture is simply not in the plan.
 */
import { frameSize, type ExportSettings } from '@ai-story/contracts';
import { subtitleLines, type SubtitleLine, type SubtitleStyle } from '../narration/subtitles.ts';
import type { ShotRow, StageContext } from '../stages/definition.ts';
import { shotTimeline } from './compose.ts';

export interface PlannedShot {
  shot: ShotRow;
  picture: { kind: 'clip' | 'image'; media_id: string } | null;
  duration_s: number;
  narration: { media_id: string; duration_s: number; lines: SubtitleLine[] } | null;
  movement: string | null;
}

export interface PlacedLine extends SubtitleLine {
  /** `<shot_id>:<index>` — what a hand edit is kept under. */
  key: string;
  shot_id: string;
  edited: boolean;
}

type Loose = Record<string, unknown>;
const list = (v: unknown): Loose[] => (Array.isArray(v) ? v.filter((x): x is Loose => !!x && typeof x === 'object') : []);
const str = (v: unknown) => (typeof v === 'string' && v ? v : null);
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : null);

function outputOf(ctx: StageContext, stage: string): Loose {
  const row = ctx.stages.find((s) => s.stageType === stage);
  return row?.output && typeof row.output === 'object' ? (row.output as Loose) : {};
}

/** The item for a shot: the one marked chosen, else the last (the newest redo). */
function pick(items: Loose[], shotId: string): Loose | null {
  const mine = items.filter((i) => i.shot_id === shotId && str(i.media_id));
  return mine.find((i) => i.chosen === true) ?? mine.at(-1) ?? null;
}

export function frameOf(ctx: StageContext) {
  return { ...frameSize(ctx.project.aspectRatio, ctx.project.resolution), fps: ctx.project.fps };
}

export function subtitleStyleOf(settings: ExportSettings, width: number, height: number): SubtitleStyle {
  return {
    width,
    height,
    ...(settings.subtitle_font_size !== null && { fontSize: settings.subtitle_font_size }),
    ...(settings.subtitle_outline !== null && { outline: settings.subtitle_outline }),
    preset: settings.safe_area,
  };
}

export function planExport(ctx: StageContext, settings: ExportSettings): PlannedShot[] {
  const clips = list(outputOf(ctx, 'video').clips);
  const images = list(outputOf(ctx, 'image').images);
  const narration = list(outputOf(ctx, 'narration').narration);
  const movements = list(outputOf(ctx, 'camera').movements);
  const { width, height } = frameOf(ctx);
  const style = subtitleStyleOf(settings, width, height);
  return ctx.shots.map((shot) => {
    const clip = pick(clips, shot.id);
    const image = pick(images, shot.id);
    const voice = pick(narration, shot.id);
    const voiceS = num(voice?.duration_s);
    // The clip was fitted to the shot by the video stage; a still lasts the shot, or its narration if longer.
    const duration = num(clip?.duration_s) ?? Math.max(shot.durationSeconds, voiceS ?? 0);
    let lines: SubtitleLine[] = [];
    if (voice) {
      // Lines the narration stage keeps (hand-edited there) win over lines cut from its sentences.
      const kept = list(voice.subtitle_lines);
      const sentences = list(voice.sentences).flatMap((s) =>
        typeof s.text === 'string' && typeof s.start_s === 'number' && typeof s.end_s === 'number' ? [{ text: s.text, start_s: s.start_s, end_s: s.end_s }] : [],
      );
      lines = kept.length
        ? kept.flatMap((l) => (typeof l.text === 'string' && typeof l.start_s === 'number' && typeof l.end_s === 'number' ? [{ text: l.text, start_s: l.start_s, end_s: l.end_s }] : []))
        : subtitleLines(sentences, style);
    }
    const movement = movements.find((m) => m.shot_id === shot.id) ?? movements.find((m) => m.sequence_number === shot.sequenceNumber);
    return {
      shot,
      picture: clip ? { kind: 'clip', media_id: String(clip.media_id) } : image ? { kind: 'image', media_id: String(image.media_id) } : null,
      duration_s: duration,
      narration: voice && str(voice.media_id) ? { media_id: String(voice.media_id), duration_s: voiceS ?? duration, lines } : null,
      movement: str(movement?.movement_type),
    };
  });
}

/**
 * Subtitle lines on a timeline whose shots start at `starts`: each shot's lines shifted to its start,
 * cut at its end (its narration is cut there too), hand edits applied, empty edits dropping the line,
 * and never two on screen at once.
 */
export function placeLines(shots: PlannedShot[], starts: number[], edits: Record<string, string>): PlacedLine[] {
  const placed: PlacedLine[] = [];
  shots.forEach((planned, i) => {
    for (const [j, line] of (planned.narration?.lines ?? []).entries()) {
      if (line.start_s >= planned.duration_s) continue;
      const key = `${planned.shot.id}:${j}`;
      const edited = Object.hasOwn(edits, key);
      const text = edited ? edits[key] : line.text;
      if (!text.trim()) continue;
      const round = (s: number) => Math.round(s * 1000) / 1000;
      placed.push({
        key,
        shot_id: planned.shot.id,
        edited,
        text,
        start_s: round(starts[i] + line.start_s),
        end_s: round(starts[i] + Math.min(line.end_s, planned.duration_s)),
      });
    }
  });
  // A crossfade starts the next shot before this one ends: its first line then waits for no one, and
  // the line still showing gives way, so two lines are never on screen at once.
  for (let i = 0; i + 1 < placed.length; i++) if (placed[i].end_s > placed[i + 1].start_s) placed[i].end_s = placed[i + 1].start_s;
  return placed;
}

/** The final timeline of the planned shots that have a picture. */
export function timelineOf(shots: PlannedShot[], settings: ExportSettings, fps: number) {
  return shotTimeline({ shots: shots.map((s) => ({ clip: '', duration_s: s.duration_s })), transition: { kind: settings.transition, duration_s: settings.transition_s }, fps });
}
