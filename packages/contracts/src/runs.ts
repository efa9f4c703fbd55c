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

// ---- SSE events (DESIGN §4) ----
const base = { run_id: z.string(), stage: StageKey };
export const StageUpdateEvent = z.object({ type: z.literal('stage_update'), ...base, status: StageStatus.or(RunStatus) });
export const InfoEvent = z.object({ type: z.literal('info'), ...base, message: z.string() });
/** In a run's own stream a token event may carry only `type` and `content`. */
export const TokenEvent = z.object({
  type: z.literal('token'),
  run_id: z.string().optional(),
  stage: StageKey.optional(),
  content: z.string(),
});
export const ProgressEvent = z.object({
  type: z.literal('progress'),
  ...base,
  tokens: z.number(),
  elapsed_ms: z.number(),
  tokens_per_s: z.number(),
  eta_ms: z.number().nullable().optional(),
});
export const ShotEvent = z.object({ type: z.literal('shot'), ...base, shot: Shot });
export const MovementEvent = z.object({ type: z.literal('movement'), ...base, movement: Movement });
export const ResetEvent = z.object({ type: z.literal('reset'), ...base, reason: z.string() });
export const DoneEvent = z.object({
  type: z.literal('done'),
  ...base,
  full_text: z.string(),
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
export const ProjectUpdateEvent = z.object({
  type: z.literal('project_update'),
  project_id: z.string(),
  status: z.string(),
  stages: z.array(z.object({ stage_type: StageKey, status: StageStatus, stale: z.boolean(), current_run_id: z.string().nullable() })),
});
export const AccessRevokedEvent = z.object({ type: z.literal('access_revoked'), project_id: z.string() });

export const RunEvent = z.discriminatedUnion('type', [
  StageUpdateEvent,
  InfoEvent,
  TokenEvent,
  ProgressEvent,
  ShotEvent,
  MovementEvent,
  ResetEvent,
  DoneEvent,
  ErrorEvent,
]);
export type RunEvent = z.infer<typeof RunEvent>;

export const ProjectEvent = z.discriminatedUnion('type', [
  StageUpdateEvent,
  InfoEvent,
  TokenEvent,
  ProgressEvent,
  ShotEvent,
  MovementEvent,
  ResetEvent,
  DoneEvent,
  ErrorEvent,
  ProjectUpdateEvent,
  AccessRevokedEvent,
]);
export type ProjectEvent = z.infer<typeof ProjectEvent>;

/** Terminal events end a run's stream (DESIGN §4). */
export const isTerminalEvent = (e: { type: string; status?: string }) =>
  e.type === 'done' || e.type === 'error' || (e.type === 'stage_update' && (e.status === 'cancelled' || e.status === 'interrupted'));

export const EditStageOutputBody = z.object({ output: z.record(z.string(), z.unknown()) });
