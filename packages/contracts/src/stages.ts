import { z } from 'zod';

/** Stage keys in pipeline order (DESIGN §1). */
export const STAGE_KEYS = ['rewrite', 'storyboard', 'camera', 'image', 'narration', 'video', 'export'] as const;
export const StageKey = z.enum(STAGE_KEYS);
export type StageKey = z.infer<typeof StageKey>;

/** Stages that stream from an LLM; the others are media stages (per-shot tasks, DESIGN §9). */
export const LLM_STAGES = ['rewrite', 'storyboard', 'camera'] as const satisfies readonly StageKey[];
export const MEDIA_STAGES = ['image', 'narration', 'video', 'export'] as const satisfies readonly StageKey[];

export const StageStatus = z.enum([
  'pending',
  'running',
  'completed',
  'failed',
  'cancelled',
  'interrupted',
  'skipped',
]);
export type StageStatus = z.infer<typeof StageStatus>;

export const ProjectStatus = z.enum(['draft', 'processing', 'paused', 'completed', 'failed']);
export type ProjectStatus = z.infer<typeof ProjectStatus>;

export const RewriteStyle = z.enum(['narrative', 'science', 'emotional', 'suspense', 'custom']);
export type RewriteStyle = z.infer<typeof RewriteStyle>;

/** Caps on user text, justified: a long-form script is ~10k characters; 50k leaves room for pasted drafts. */
export const MAX_TOPIC_CHARS = 50_000;
export const MAX_INSTRUCTIONS_CHARS = 5_000;

export const RewriteInput = z.object({
  original_text: z.string().trim().min(1).max(MAX_TOPIC_CHARS),
  style: RewriteStyle.default('narrative'),
  instructions: z.string().max(MAX_INSTRUCTIONS_CHARS).optional(),
  target_length: z.number().int().min(50).max(20_000).optional(),
});
export type RewriteInput = z.infer<typeof RewriteInput>;

export const RewriteOutput = z.object({
  original_text: z.string(),
  rewritten_text: z.string(),
});
export type RewriteOutput = z.infer<typeof RewriteOutput>;

export const MOVEMENT_TYPES = [
  'static',
  'zoom_in',
  'zoom_out',
  'pan_left',
  'pan_right',
  'tilt_up',
  'tilt_down',
  'dolly_in',
  'dolly_out',
] as const;
export const MovementType = z.enum(MOVEMENT_TYPES);
export type MovementType = z.infer<typeof MovementType>;

export const Shot = z.object({
  id: z.string().optional(),
  sequence_number: z.number().int().min(1),
  scene_description: z.string(),
  narration_text: z.string(),
  image_prompt: z.string(),
  duration_seconds: z.number().min(0.5).max(120),
  /** Who speaks the narration (a character's name), when the text is dialogue. */
  speaker: z.string().max(100).nullable().optional(),
  /** The user fixed the length by hand: narration is fitted to it instead of setting it. */
  duration_locked: z.boolean().optional(),
  /** The media stages' choices for this shot, by stage. */
  media_settings: z.record(z.string(), z.record(z.string(), z.unknown())).optional(),
});
export type Shot = z.infer<typeof Shot>;
export const ShotList = z.object({ count: z.number().int(), results: z.array(Shot), total_duration_seconds: z.number() });
export type ShotList = z.infer<typeof ShotList>;

export const MovementParams = z.object({
  speed: z.enum(['slow', 'medium', 'fast']).or(z.number().min(0).max(1)),
  intensity: z.number().min(0).max(1),
  easing: z.enum(['linear', 'ease_in', 'ease_out', 'ease_in_out']),
  description: z.string(),
});
export const Movement = z.object({
  id: z.string().optional(),
  shot_id: z.string().optional(),
  sequence_number: z.number().int().min(1),
  movement_type: MovementType,
  params: MovementParams,
});
export type Movement = z.infer<typeof Movement>;
export const MovementList = z.object({ count: z.number().int(), results: z.array(Movement) });
export type MovementList = z.infer<typeof MovementList>;

export const ASPECT_RATIOS = ['9:16', '16:9', '1:1', '4:3', '3:4'] as const;
export const AspectRatio = z.enum(ASPECT_RATIOS);
export type AspectRatio = z.infer<typeof AspectRatio>;
export const Resolution = z.enum(['720p', '1080p']);
export type Resolution = z.infer<typeof Resolution>;
export const Fps = z.union([z.literal(24), z.literal(25), z.literal(30)]);

/** A project's media settings (DESIGN §9): every media stage renders to these. */
export const MediaSettings = z.object({
  aspect_ratio: AspectRatio,
  resolution: Resolution,
  fps: Fps,
  min_shot_s: z.number().min(1).max(60),
  max_shot_s: z.number().min(1).max(120),
});
export type MediaSettings = z.infer<typeof MediaSettings>;
export const DEFAULT_MEDIA_SETTINGS: MediaSettings = { aspect_ratio: '9:16', resolution: '720p', fps: 25, min_shot_s: 2, max_shot_s: 8 };

/** Frame size in pixels for an aspect ratio and resolution (720p = the short side is 720). */
export function frameSize(aspect: AspectRatio, resolution: Resolution): { width: number; height: number } {
  const short = resolution === '1080p' ? 1080 : 720;
  const [w, h] = aspect.split(':').map(Number);
  const even = (n: number) => Math.round(n / 2) * 2;
  return w >= h ? { width: even((short * w) / h), height: short } : { width: short, height: even((short * h) / w) };
}

export const StoryboardInput = z
  .object({
    /** The text to cut into shots; by default the project's current rewrite (or its topic). */
    text: z.string().trim().min(1).max(MAX_TOPIC_CHARS),
    shot_count: z.number().int().min(1).max(60).optional(),
    min_duration: z.number().min(1).max(60).default(2),
    max_duration: z.number().min(1).max(120).default(8),
    aspect_ratio: z.enum(ASPECT_RATIOS).default('9:16'),
    visual_style: z.string().trim().max(500).default('电影感，写实，柔和光线'),
  })
  .refine((i) => i.min_duration <= i.max_duration, { message: 'min_duration must not exceed max_duration', path: ['min_duration'] });
export type StoryboardInput = z.infer<typeof StoryboardInput>;

export const CameraInput = z.object({
  /** Regenerate only these shots' movements; by default every shot. */
  shot_ids: z.array(z.uuid()).min(1).max(200).optional(),
});
export type CameraInput = z.infer<typeof CameraInput>;

const ShotText = z.string().max(5_000);
const Speaker = z.string().trim().max(100).nullable();
export const CreateShotBody = z.object({
  scene_description: ShotText.default(''),
  narration_text: ShotText.default(''),
  image_prompt: ShotText.default(''),
  duration_seconds: z.number().min(0.5).max(120).default(3),
  /** Insert at this position (1-based); the end by default. */
  sequence_number: z.number().int().min(1).optional(),
});
export const UpdateShotBody = z
  .object({
    scene_description: ShotText,
    narration_text: ShotText,
    image_prompt: ShotText,
    duration_seconds: z.number().min(0.5).max(120),
    speaker: Speaker,
    duration_locked: z.boolean(),
    /** A media stage's choices for this shot (merged into what is saved; each stage checks its own). */
    media_settings: z.partialRecord(StageKey, z.record(z.string(), z.unknown())),
  })
  .partial()
  .refine((b) => Object.keys(b).length > 0, { message: 'Nothing to update' });
export const ReorderShotsBody = z.object({ ids: z.array(z.uuid()).min(1).max(500) });
export const UpdateMovementBody = z
  .object({ movement_type: MovementType, params: MovementParams.partial() })
  .partial()
  .refine((b) => Object.keys(b).length > 0, { message: 'Nothing to update' });
