import { z } from 'zod';

/** The 文生图 stage (DESIGN §9): its settings, input, output and the endpoints around it. */

export const MAX_IMAGE_CANDIDATES = 4;
/** Uploads and vendor downloads: a still image larger than this is not a storyboard picture. */
export const MAX_IMAGE_BYTES = 20 * 1024 * 1024;

/** Project-level settings of the image stage (`projects.stage_settings.image`). */
export const ImageSettings = z.object({
  /** Candidates per shot, 1–4. */
  candidates: z.number().int().min(1).max(MAX_IMAGE_CANDIDATES).default(1),
  /** The most a paid run may cost, in the providers' price unit; null: no cap. */
  budget_cap: z.number().min(0).nullable().default(null),
});
export type ImageSettings = z.infer<typeof ImageSettings>;

/** A shot's own choice (`storyboard_shots.media_settings.image`). */
export const ImageShotSettings = z.object({
  chosen_image_id: z.string().nullable().default(null),
});

export const ImageInput = z.object({
  /** Only these shots (regenerate some); default: every shot, or the stale ones after a storyboard edit. */
  shot_ids: z.array(z.uuid()).min(1).optional(),
  /** A prompt for this run only, per shot id (the shot's own prompt stays as it is). */
  prompt_overrides: z.record(z.string(), z.string().trim().min(1).max(4_000)).optional(),
  /** Overrides the project's candidates per shot for this run. */
  candidates: z.number().int().min(1).max(MAX_IMAGE_CANDIDATES).optional(),
});
export type ImageInput = z.infer<typeof ImageInput>;

export const ImageSource = z.enum(['offline', 'generated', 'upload']);

export const ImageItem = z.object({
  id: z.string(),
  shot_id: z.string(),
  media_id: z.string(),
  url: z.string(),
  thumb_url: z.string().nullable(),
  width: z.number().int(),
  height: z.number().int(),
  chosen: z.boolean(),
  source: ImageSource,
  /** What the image cost (provider's price per image); 0 offline and for uploads. */
  cost: z.number().optional(),
});
export type ImageItem = z.infer<typeof ImageItem>;

export const ImageOutput = z.object({
  images: z.array(ImageItem),
  failed_shot_ids: z.array(z.string()),
});
export type ImageOutput = z.infer<typeof ImageOutput>;

export const ImageEstimate = z.object({
  shots: z.number().int(),
  candidates: z.number().int(),
  images: z.number().int(),
  price_per_unit: z.number(),
  cost: z.number(),
  budget_cap: z.number().nullable(),
  within_budget: z.boolean(),
  provider: z.object({ id: z.string(), name: z.string(), model_name: z.string(), is_simulated: z.boolean() }).nullable(),
});
export type ImageEstimate = z.infer<typeof ImageEstimate>;

export const Character = z.object({
  name: z.string().trim().min(1).max(50),
  look: z.string().trim().max(500).default(''),
  /** The character's chosen picture (one of the project's images), sent as a reference to providers that take one. */
  image_media_id: z.uuid().nullable().optional(),
});
export type Character = z.infer<typeof Character>;
export const CharacterList = z.object({ characters: z.array(Character).max(50) });
export type CharacterList = z.infer<typeof CharacterList>;
/** A picture uploaded for a character; the characters list then names it by `media_id`. */
export const CharacterPicture = z.object({ media_id: z.string(), url: z.string(), width: z.number().int(), height: z.number().int() });
export type CharacterPicture = z.infer<typeof CharacterPicture>;
export const CharacterSuggestion = CharacterList.extend({
  /** `model`: proposed by the LLM; `names`: picked from the storyboard's words when the model could not say. */
  method: z.enum(['model', 'names']),
  message: z.string(),
});

export const MediaUsage = z.object({
  files: z.number().int(),
  bytes: z.number(),
  /** Image rows no current output uses (what a clean-up would remove). */
  unpicked: z.object({ rows: z.number().int(), bytes: z.number() }),
});
export type MediaUsage = z.infer<typeof MediaUsage>;
export const MediaCleanup = z.object({ removed_rows: z.number().int(), removed_files: z.number().int(), freed_bytes: z.number() });
