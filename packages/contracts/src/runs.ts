import { z } from 'zod';
import { Timestamp } from './common.ts';
import { Movement, Shot, StageKey, StageStatus } from './stages.ts';

export const RunStatus = z.enum(['queued', 'running', 'completed', 'failed', 'cancelled', 'interrupted']);
export type RunStatus = z.infer<typeof RunStatus>;

export const RunUsage = z.object({
  prompt_tokens: z.number(),
  completion_tokens: z.number(),
  estimated: z.boolean(),
  ttft_ms: z.number().nullable(),
  duration_ms: z.number().nullable(),
  cost: z.number(),
});
export type RunUsage = z.infer<typeof RunUsage>;

export const RunError = z.object({ message: z.string(), code: z.string(), retryable: z.boolean() });

export const Run = z.object({
  id: z.string(),
  project_id: z.string(),
  stage: StageKey,
  status: RunStatus,
  input: z.unknown(),
  prompt: z.string().nullable(),
  provider: z.string().nullable(),
  provider_id: z.string().nullable(),
  model: z.string().nullable(),
  is_simulated: z.boolean(),
  output: z.unknown().nullable(),
  /** Text so far (partial while running, full when completed). */
  text: z.string(),
  usage: RunUsage.nullable(),
  error: RunError.nullable(),
  source: z.enum(['ai', 'edit', 'restore']),
  created_by: z.string().nullable(),
  created_at: Timestamp,
  started_at: Timestamp.nullable(),
  finished_at: Timestamp.nullable(),
});
export type Run = z.infer<typeof Run>;

export const StartRunBody = z.object({
  input: z.record(z.string(), z.unknown()).default({}),
  provider_id: z.uuid().optional(),
});

// ---- SSE events (DESIGN §4, §9) ----
const base = { run_id: z.string(), stage: StageKey };
export const StageUpdateEvent = z.object({ type: z.literal('stage_update'), ...base, status: StageStatus.or(RunStatus) });
/** Words as a code with parameters, worded by the web app in both languages; `message` stays for API clients. */
export const Params = z.record(z.string(), z.union([z.string(), z.number()]));
export type Params = z.infer<typeof Params>;
export const InfoEvent = z.object({ type: z.literal('info'), ...base, message: z.string(), code: z.string().optional(), params: Params.optional() });
/** In a run's own stream a token event may carry only `type` and `content`. */
export const TokenEvent = z.object({
  type: z.literal('token'),
  run_id: z.string().optional(),
  stage: StageKey.optional(),
  content: z.string(),
  /** Only with `?compat=seed`: the text so far, as the seed's client expects. */
  full_text: z.string().optional(),
});
/** A step of a media stage as a code with parameters; the web app words it in both languages. */
export const ProgressStep = z.object({ code: z.string(), params: z.record(z.string(), z.union([z.string(), z.number()])).optional() });
export type ProgressStep = z.infer<typeof ProgressStep>;
/** LLM stages count tokens; media stages count finished items (`done` of `total`). */
export const ProgressEvent = z.object({
  type: z.literal('progress'),
  ...base,
  elapsed_ms: z.number(),
  eta_ms: z.number().nullable().optional(),
  tokens: z.number().optional(),
  tokens_per_s: z.number().optional(),
  done: z.number().optional(),
  total: z.number().optional(),
  percent: z.number().optional(),
  step: ProgressStep.optional(),
});
export const ShotEvent = z.object({ type: z.literal('shot'), ...base, shot: Shot });
export const MovementEvent = z.object({ type: z.literal('movement'), ...base, movement: Movement });

export const TaskStatus = z.enum(['queued', 'running', 'succeeded', 'failed', 'cached', 'cancelled']);
export type TaskStatus = z.infer<typeof TaskStatus>;
/** One shot's task in a media stage. */
export const TaskEvent = z.object({
  type: z.literal('task'),
  ...base,
  shot_id: z.string(),
  status: TaskStatus,
  percent: z.number().optional(),
  message: z.string().optional(),
  /** Place in the render queue while waiting. */
  position: z.number().optional(),
});
/** One finished media item: the stage's own fields beside these. */
export const MediaItem = z.looseObject({ id: z.string().optional(), shot_id: z.string(), media_id: z.string(), url: z.string() });
export type MediaItem = z.infer<typeof MediaItem>;
export const ImageEvent = z.object({ type: z.literal('image'), ...base, shot_id: z.string(), image: MediaItem });
export const AudioEvent = z.object({ type: z.literal('audio'), ...base, shot_id: z.string(), audio: MediaItem });
export const ClipEvent = z.object({ type: z.literal('clip'), ...base, shot_id: z.string(), clip: MediaItem });
/** A media stage's item events, by the event type each stage sends. */
export const MEDIA_ITEM_EVENTS = ['image', 'audio', 'clip'] as const;
export type MediaItemEventType = (typeof MEDIA_ITEM_EVENTS)[number];

export const ResetEvent = z.object({ type: z.literal('reset'), ...base, reason: z.string() });
/** The server sends `output` always (null when a stage has none) and `full_text` for text stages only. */
export const DoneEvent = z.object({
  type: z.literal('done'),
  ...base,
  full_text: z.string().optional(),
  output: z.unknown().optional(),
  run: Run,
});
export const ErrorEvent = z.object({
  type: z.literal('error'),
  ...base,
  message: z.string(),
  code: z.string(),
  retryable: z.boolean(),
});

export const RunEvent = z.discriminatedUnion('type', [
  StageUpdateEvent,
  InfoEvent,
  TokenEvent,
  ProgressEvent,
  ShotEvent,
  MovementEvent,
  TaskEvent,
  ImageEvent,
  AudioEvent,
  ClipEvent,
  ResetEvent,
  DoneEvent,
  ErrorEvent,
]);
export type RunEvent = z.infer<typeof RunEvent>;
export type RunEventType = RunEvent['type'];

export const ProjectUpdateEvent = z.object({
  type: z.literal('project_update'),
  project_id: z.string(),
  status: z.string(),
  pipeline_state: z.enum(['idle', 'running', 'pausing', 'paused']).optional(),
  stages: z.array(
    z.object({
      stage_type: StageKey,
      status: StageStatus,
      stale: z.boolean(),
      stale_shot_ids: z.array(z.string()).default([]),
      current_run_id: z.string().nullable(),
      status_reason: z.string().nullable().optional(),
      status_reason_code: z.string().nullable().optional(),
      status_reason_params: z.record(z.string(), z.string()).optional(),
    }),
  ),
});
/** Why a reader's project stream ended: the project was deleted, or the reader's access to it was removed. */
export const AccessLoss = z.enum(['deleted', 'removed']);
export type AccessLoss = z.infer<typeof AccessLoss>;
export const AccessRevokedEvent = z.object({ type: z.literal('access_revoked'), project_id: z.string(), reason: AccessLoss });

/** The project stream carries every run event of the project, plus its own two. */
export const ProjectEvent = z.discriminatedUnion('type', [...RunEvent.options, ProjectUpdateEvent, AccessRevokedEvent]);
export type ProjectEvent = z.infer<typeof ProjectEvent>;

/** Terminal events end a run's stream (DESIGN §4). */
export const isTerminalEvent = (e: { type: string; status?: string }) =>
  e.type === 'done' || e.type === 'error' || (e.type === 'stage_update' && (e.status === 'cancelled' || e.status === 'interrupted'));

export const EditStageOutputBody = z.object({ output: z.record(z.string(), z.unknown()) });
