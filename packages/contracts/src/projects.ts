import { z } from 'zod';
import { Timestamp } from './common.ts';
import { AspectRatio, Fps, MAX_TOPIC_CHARS, ProjectStatus, Resolution, StageKey, StageStatus } from './stages.ts';

export const ProjectName = z.string().trim().min(1).max(200);

export const CreateProjectBody = z.object({
  name: ProjectName,
  original_topic: z.string().max(MAX_TOPIC_CHARS).default(''),
  description: z.string().max(2_000).default(''),
  style: z.string().max(200).default(''),
});
export const UpdateProjectBody = z
  .object({
    name: ProjectName,
    original_topic: z.string().max(MAX_TOPIC_CHARS),
    description: z.string().max(2_000),
    style: z.string().max(200),
    aspect_ratio: AspectRatio,
    resolution: Resolution,
    fps: Fps,
    min_shot_s: z.number().min(1).max(60),
    max_shot_s: z.number().min(1).max(120),
  })
  .partial()
  .refine((b) => b.min_shot_s === undefined || b.max_shot_s === undefined || b.min_shot_s <= b.max_shot_s, {
    message: 'min_shot_s must not exceed max_shot_s',
    path: ['min_shot_s'],
  });

export const MemberRole = z.enum(['viewer', 'editor']);
export type MemberRole = z.infer<typeof MemberRole>;
export const AccessRole = z.enum(['owner', 'editor', 'viewer']);
export type AccessRole = z.infer<typeof AccessRole>;

export const ProjectStage = z.object({
  id: z.string(),
  stage_type: StageKey,
  status: StageStatus,
  stale: z.boolean(),
  /** Shots whose part of this stage's output is out of date (the pipeline redoes only these). */
  stale_shot_ids: z.array(z.string()),
  status_reason: z.string().nullable(),
  /** The reason as a code with parameters (worded by the web app); `run_failed` carries the failure's own words as `detail`. */
  status_reason_code: z.string().nullable().optional(),
  status_reason_params: z.record(z.string(), z.string()).optional(),
  output: z.unknown().nullable(),
  current_run_id: z.string().nullable(),
  updated_at: Timestamp,
});
export type ProjectStage = z.infer<typeof ProjectStage>;

export const Project = z.object({
  id: z.string(),
  name: z.string(),
  original_topic: z.string(),
  description: z.string(),
  style: z.string(),
  status: ProjectStatus,
  /** The one-click pipeline: `running` goes on to the next stage, `pausing` stops after the current one. */
  pipeline_state: z.enum(['idle', 'running', 'pausing', 'paused']),
  owner_id: z.string(),
  access: AccessRole,
  /** stages with a current result / all stages, 0..1 (skipped and out-of-date stages are not done) */
  progress: z.number(),
  /** Stages whose result is out of date (需更新), in pipeline order. */
  stale_stages: z.array(StageKey).optional(),
  aspect_ratio: AspectRatio,
  resolution: Resolution,
  fps: Fps,
  min_shot_s: z.number(),
  max_shot_s: z.number(),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export type Project = z.infer<typeof Project>;

export const ProjectDetail = Project.extend({ stages: z.array(ProjectStage) });
export type ProjectDetail = z.infer<typeof ProjectDetail>;

export const Member = z.object({ user_id: z.string(), email: z.string(), name: z.string(), role: MemberRole });
export const AddMemberBody = z
  .object({ user_id: z.uuid().optional(), email: z.email().optional(), role: MemberRole })
  .refine((b) => b.user_id || b.email, { message: 'user_id or email is required', path: ['email'] });
/**
 * The answer to adding a member by email, the same whether or not an account has that email (so the
 * form cannot be used to find out who has one); an account that has it is a member from now on.
 */
export const MemberAdded = z.object({ email: z.string(), role: MemberRole });
export const UpdateMemberBody = z.object({ role: MemberRole });
