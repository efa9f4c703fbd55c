import { z } from 'zod';
import { SubtitleLine } from './narration.ts';

/** Safe-area presets of vertical platforms (where their overlays leave room for subtitles). */
export const SAFE_AREA_PRESETS = ['douyin', 'kuaishou', 'bilibili', 'youtube_shorts', 'none'] as const;
export const TRANSITION_KINDS = ['cut', 'fade', 'slide'] as const;

/**
 * The export's project settings (合成导出). Flat fields, so a PATCH of one of them keeps the others.
 * Null font size / outline: sized from the frame (6.5% of its short side, border 1/16 of that).
 */
export const ExportSettings = z.object({
  subtitle_mode: z.enum(['burn', 'soft', 'none']).default('burn'),
  subtitle_font_size: z.number().int().min(12).max(200).nullable().default(null),
  subtitle_outline: z.number().int().min(0).max(20).nullable().default(null),
  safe_area: z.enum(SAFE_AREA_PRESETS).default('douyin'),
  /** An uploaded audio file (…/stages/export/music/), or none. */
  music_media_id: z.uuid().nullable().default(null),
  music_volume: z.number().min(0).max(1).default(0.2),
  music_duck: z.boolean().default(true),
  transition: z.enum(TRANSITION_KINDS).default('fade'),
  transition_s: z.number().min(0).max(2).default(0.4),
  /** A frame of the finished video (seconds) or an image from the store; neither: the first second. */
  cover_frame_s: z.number().min(0).nullable().default(null),
  cover_image_media_id: z.uuid().nullable().default(null),
  /** Null: the project's name. */
  cover_title: z.string().trim().max(60).nullable().default(null),
  /** The visible "AI 生成" mark; the metadata label is always written (labelling rules ask for both). */
  label_visible: z.boolean().default(true),
  label_text: z.string().trim().min(1).max(20).default('AI 生成'),
  /** Subtitle lines edited by hand, by `<shot_id>:<line index>` of that shot's lines. */
  subtitle_edits: z.record(z.string(), z.string().trim().max(200)).default({}),
});
export type ExportSettings = z.infer<typeof ExportSettings>;

export const ExportInput = z.object({
  /** Shots whose segment to render again even when a cached one exists. */
  shot_ids: z.array(z.string()).optional(),
});
export type ExportInput = z.infer<typeof ExportInput>;


export const ExportOutput = z.object({
  video: z.object({ media_id: z.string(), url: z.string(), duration_s: z.number(), width: z.number(), height: z.number(), size_bytes: z.number() }),
  subtitles: z.object({ srt_url: z.string().nullable(), ass_url: z.string().nullable() }),
  cover_url: z.string(),
  narration_url: z.string().nullable(),
  draft_url: z.string(),
  failed_shot_ids: z.array(z.string()),
  segments: z.object({ rendered: z.number(), reused: z.number() }).optional(),
});
export type ExportOutput = z.infer<typeof ExportOutput>;

/** What the preview plays: the same timeline the export renders. */
export const PreviewShot = z.object({
  shot_id: z.string(),
  sequence_number: z.number(),
  start_s: z.number(),
  duration_s: z.number(),
  clip_url: z.string().nullable(),
  image_url: z.string().nullable(),
  movement: z.string().nullable(),
  narration_url: z.string().nullable(),
});
export const PreviewLine = SubtitleLine.extend({ key: z.string(), shot_id: z.string(), edited: z.boolean() });
export const ExportPreview = z.object({
  width: z.number(),
  height: z.number(),
  fps: z.number(),
  total_s: z.number(),
  transition: z.object({ kind: z.enum(TRANSITION_KINDS), duration_s: z.number() }),
  shots: z.array(PreviewShot),
  lines: z.array(PreviewLine),
  music_url: z.string().nullable(),
  label: z.string().nullable(),
});
export type ExportPreview = z.infer<typeof ExportPreview>;
