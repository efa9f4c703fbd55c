import { z } from 'zod';

/** Vertical-video safe areas for subtitles (the apps' own overlays kept clear). */
export const SUBTITLE_POSITIONS = ['douyin', 'kuaishou', 'bilibili', 'youtube_shorts', 'none'] as const;
export const SubtitlePosition = z.enum(SUBTITLE_POSITIONS);
export type SubtitlePosition = z.infer<typeof SubtitlePosition>;

/** The narration stage's project settings (配音), kept in `projects.stage_settings.narration`. */
export const NarrationSettings = z.object({
  /** The project's voice; '' = the method's default voice. */
  voice: z.string().trim().max(200).default(''),
  /** 1 = the voice's normal rate. */
  speed: z.number().min(0.5).max(2).default(1),
  /** Loudness relative to the studio's target (-16 LUFS): 1 = target, 0.5 ≈ -6 dB. */
  volume: z.number().min(0.1).max(2).default(1),
  /** Silence between two sentences, and after a shot's last one, seconds. */
  pause_s: z.number().min(0).max(2).default(0.3),
  /** A voice per character, used for shots whose `speaker` names them. */
  voices_by_speaker: z.record(z.string().trim().min(1).max(100), z.string().trim().min(1).max(200)).default({}),
  subtitle: z
    .object({
      /** ASS font size in frame pixels; null = 6.5% of the frame's short side. */
      font_size: z.number().int().min(12).max(200).nullable().default(null),
      /** Border width in pixels; null = font size / 16. */
      outline: z.number().min(0).max(20).nullable().default(null),
      position: SubtitlePosition.default('douyin'),
    })
    .default({ font_size: null, outline: null, position: 'douyin' }),
});
export type NarrationSettings = z.infer<typeof NarrationSettings>;

export const NarrationInput = z.object({
  /** Synthesise only these shots; by default every shot (or only the stale ones after a storyboard edit). */
  shot_ids: z.array(z.uuid()).min(1).max(500).optional(),
  /** Use the offline voice (espeak-ng) even when a speech provider is active. */
  local: z.boolean().optional(),
});
export type NarrationInput = z.infer<typeof NarrationInput>;

export const NarrationSentence = z.object({
  text: z.string(),
  start_s: z.number(),
  end_s: z.number(),
  /** The sentence's own speech in the media store, reused while its text, voice and speed stay the same. */
  media_id: z.string().optional(),
  cache_key: z.string().optional(),
});
export type NarrationSentence = z.infer<typeof NarrationSentence>;

export const SubtitleLine = z.object({ text: z.string(), start_s: z.number(), end_s: z.number() });
export type SubtitleLine = z.infer<typeof SubtitleLine>;

/** One shot's narration (DESIGN §9), times relative to the shot's start. */
export const NarrationItem = z.object({
  id: z.string().optional(),
  shot_id: z.string(),
  media_id: z.string(),
  url: z.string(),
  duration_s: z.number(),
  voice: z.string(),
  sentences: z.array(NarrationSentence),
  /** The speed-up applied to fit a locked shot (1 when none). */
  tempo: z.number().optional(),
  /** The shot length this narration set (narration + pause, clamped); null for a locked shot. */
  shot_duration_s: z.number().nullable().optional(),
  /** The shot's subtitle lines (times relative to the shot); `subtitles_edited` when a user changed them. */
  subtitle_lines: z.array(SubtitleLine).optional(),
  subtitles_edited: z.boolean().optional(),
});
export type NarrationItem = z.infer<typeof NarrationItem>;

export const NarrationOutput = z.object({ narration: z.array(NarrationItem), failed_shot_ids: z.array(z.string()).default([]) });
export type NarrationOutput = z.infer<typeof NarrationOutput>;

/** Subtitle lines on the project's timeline (a shot starts where the previous shots' durations end). */
export const TimelineSubtitleLine = SubtitleLine.extend({ shot_id: z.string() });
export type TimelineSubtitleLine = z.infer<typeof TimelineSubtitleLine>;
export const Subtitles = z.object({
  lines: z.array(TimelineSubtitleLine),
  width: z.number().int(),
  height: z.number().int(),
  font_size: z.number(),
  position: SubtitlePosition,
  srt_url: z.string(),
  ass_url: z.string(),
});
export type Subtitles = z.infer<typeof Subtitles>;
export const UpdateSubtitlesBody = z.object({
  lines: z.array(z.object({ shot_id: z.uuid(), text: z.string().trim().min(1).max(500), start_s: z.number().min(0), end_s: z.number().min(0) })).max(5_000),
});
export type UpdateSubtitlesInput = z.input<typeof UpdateSubtitlesBody>;

export const EditSentenceBody = z.object({ text: z.string().trim().min(1).max(1_000) });

export const Voice = z.object({ id: z.string(), name: z.string(), language: z.string() });
export type Voice = z.infer<typeof Voice>;
export const VoiceList = z.object({
  /** Which synthesiser a run would use now: the offline voice, or a provider's api_format. */
  method: z.enum(['espeak', 'openai_speech', 'edge_tts']),
  simulated: z.boolean(),
  provider: z.string().nullable(),
  default_voice: z.string(),
  voices: z.array(Voice),
});
export type VoiceList = z.infer<typeof VoiceList>;
export const VoiceSampleBody = z.object({ voice: z.string().trim().max(200).optional(), speed: z.number().min(0.5).max(2).optional(), text: z.string().trim().min(1).max(200).optional() });
