import { z } from 'zod';

/**
 * The video stage (图生视频, DESIGN §9): one clip per shot, made from the shot's chosen image and its
 * camera movement, exactly as long as the shot. `local` is 本地运镜 (ffmpeg on this machine, free, the
 * default); `ai` asks an image-to-video provider (Kling, Seedance) and fits its clip to the shot.
 */
export const CLIP_METHODS = ['local', 'ai'] as const;
export const ClipMethod = z.enum(CLIP_METHODS);
export type ClipMethod = z.infer<typeof ClipMethod>;

/** Project-level settings of the video stage (`…/stages/video/settings/`). */
export const VideoSettings = z.object({ method: ClipMethod.default('local') });
export type VideoSettings = z.infer<typeof VideoSettings>;

/** A shot's own choice (`media_settings.video`); unset or null follows the project. */
export const VideoShotSettings = z.object({ method: ClipMethod.nullable().optional() });
export type VideoShotSettings = z.infer<typeof VideoShotSettings>;

export const VideoInput = z.object({
  /** Only these shots (e.g. regenerate one); by default every shot, or only the stale ones after a change. */
  shot_ids: z.array(z.uuid()).min(1).optional(),
  /** Render again even when an identical clip is cached (a new take from an AI provider). */
  force: z.boolean().default(false),
});
export type VideoInput = z.infer<typeof VideoInput>;

export const Clip = z.object({
  id: z.string().optional(),
  shot_id: z.string(),
  media_id: z.string(),
  url: z.string(),
  /** The image the clip was made from, for a poster frame. */
  poster_url: z.string().optional(),
  duration_s: z.number(),
  width: z.number().int(),
  height: z.number().int(),
  fps: z.number(),
  method: ClipMethod,
  /** Hash of everything the clip depends on (image, movement, duration, size, fps, method, provider, model). */
  cache_key: z.string(),
  /** This run reused an earlier identical clip instead of rendering it. */
  cached: z.boolean().optional(),
  provider: z.string().nullable().optional(),
  model: z.string().nullable().optional(),
  /** Billable seconds of vendor video, and their cost (price_per_unit per second); 0 for local clips. */
  usage_seconds: z.number().optional(),
  cost: z.number().optional(),
});
export type Clip = z.infer<typeof Clip>;

export const VideoOutput = z.object({ clips: z.array(Clip), failed_shot_ids: z.array(z.string()) });
export type VideoOutput = z.infer<typeof VideoOutput>;
