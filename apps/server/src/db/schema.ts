import { sql } from 'drizzle-orm';
import {
  boolean,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();
const updatedAt = () => timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();

export const users = pgTable('users', {
  id: uuid('id').primaryKey().defaultRandom(),
  email: text('email').notNull().unique(),
  name: text('name').notNull(),
  passwordHash: text('password_hash').notNull(),
  role: text('role', { enum: ['admin', 'user'] }).notNull().default('user'),
  createdAt: createdAt(),
});

/** Server-side sessions: the cookie holds a random token, we store only its SHA-256. */
export const sessions = pgTable(
  'sessions',
  {
    id: text('id').primaryKey(),
    userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
  },
  (t) => [index('sessions_user_idx').on(t.userId)],
);

export const apiTokens = pgTable(
  'api_tokens',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    prefix: text('prefix').notNull(),
    tokenHash: text('token_hash').notNull().unique(),
    createdAt: createdAt(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [index('api_tokens_user_idx').on(t.userId)],
);

export const settings = pgTable('settings', {
  key: text('key').primaryKey(),
  value: jsonb('value').notNull(),
});

export const projects = pgTable(
  'projects',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    ownerId: uuid('owner_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    originalTopic: text('original_topic').notNull().default(''),
    description: text('description').notNull().default(''),
    style: text('style').notNull().default(''),
    status: text('status', { enum: ['draft', 'processing', 'paused', 'completed', 'failed'] }).notNull().default('draft'),
    modelConfig: jsonb('model_config').notNull().default(sql`'{}'::jsonb`),
    promptSetId: uuid('prompt_set_id'),
    /** One-click pipeline: `running` goes on to the next stage, `pausing` stops after the current one. */
    pipelineState: text('pipeline_state', { enum: ['idle', 'running', 'pausing', 'paused'] }).notNull().default('idle'),
    // Media settings (DESIGN §9): every media stage renders to these.
    aspectRatio: text('aspect_ratio', { enum: ['9:16', '16:9', '1:1', '4:3', '3:4'] }).notNull().default('9:16'),
    resolution: text('resolution', { enum: ['720p', '1080p'] }).notNull().default('720p'),
    fps: integer('fps').notNull().default(25),
    minShotS: doublePrecision('min_shot_s').notNull().default(2),
    maxShotS: doublePrecision('max_shot_s').notNull().default(8),
    /** Each media stage's own settings (voice, clip method, export options …), keyed by stage, checked by the stage's schema. */
    stageSettings: jsonb('stage_settings').$type<Record<string, Record<string, unknown>>>().notNull().default(sql`'{}'::jsonb`),
    /** The story's characters: `[{ name, look, image_media_id? }]` — their look goes into every shot that names them. */
    characters: jsonb('characters').$type<{ name: string; look: string; image_media_id?: string | null }[]>().notNull().default(sql`'[]'::jsonb`),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  // Not on updated_at: every run's start and ending sets it, and an update that changes no indexed
  // column stays on its page (HOT) without a new entry in every index. The project list filters by
  // owner or membership, so it never read this index in updated_at order anyway.
  (t) => [index('projects_owner_idx').on(t.ownerId)],
);

export const projectMembers = pgTable(
  'project_members',
  {
    projectId: uuid('project_id').notNull().references(() => projects.id, { onDelete: 'cascade' }),
    userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    role: text('role', { enum: ['viewer', 'editor'] }).notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.projectId, t.userId] }), index('project_members_user_idx').on(t.userId)],
);

export const projectStages = pgTable(
  'project_stages',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    projectId: uuid('project_id').notNull().references(() => projects.id, { onDelete: 'cascade' }),
    stageType: text('stage_type').notNull(),
    position: integer('position').notNull(),
    status: text('status').notNull().default('pending'),
    stale: boolean('stale').notNull().default(false),
    /** Shots whose part of the output is out of date: the pipeline redoes only these. */
    staleShotIds: jsonb('stale_shot_ids').$type<string[]>().notNull().default(sql`'[]'::jsonb`),
    statusReason: text('status_reason'),
    output: jsonb('output'),
    currentRunId: uuid('current_run_id'),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex('project_stages_project_stage_uq').on(t.projectId, t.stageType)],
);

export const stageRuns = pgTable(
  'stage_runs',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    projectId: uuid('project_id').notNull().references(() => projects.id, { onDelete: 'cascade' }),
    stage: text('stage').notNull(),
    status: text('status').notNull(),
    source: text('source', { enum: ['ai', 'edit', 'restore'] }).notNull().default('ai'),
    input: jsonb('input').notNull().default(sql`'{}'::jsonb`),
    prompt: text('prompt'),
    providerId: uuid('provider_id'),
    providerName: text('provider_name'),
    model: text('model'),
    isSimulated: boolean('is_simulated').notNull().default(false),
    /** Text so far: checkpointed while running (batched), complete at the end. */
    text: text('text').notNull().default(''),
    output: jsonb('output'),
    usage: jsonb('usage'),
    error: jsonb('error'),
    /** Id of the run's terminal event: a reconnect at or past it answers 204 (DESIGN §4). */
    lastEventId: integer('last_event_id'),
    /** The studio instance executing it (its lease in `instances`); start-up recovers a run only once that lease is gone. */
    ownerInstanceId: uuid('owner_instance_id'),
    createdBy: uuid('created_by'),
    createdAt: createdAt(),
    startedAt: timestamp('started_at', { withTimezone: true, mode: 'date' }),
    finishedAt: timestamp('finished_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [
    index('stage_runs_project_stage_idx').on(t.projectId, t.stage, t.createdAt),
    index('stage_runs_status_idx').on(t.status),
    // One active run per project stage, enforced by the database too (DESIGN §4).
    uniqueIndex('stage_runs_one_active_uq').on(t.projectId, t.stage).where(sql`status in ('queued', 'running')`),
  ],
);

/**
 * A run not yet ended, written as stage_runs_one_active_uq's own predicate, literally: with the statuses
 * as parameters, a prepared statement's cached (generic) plan cannot prove the partial index applies and
 * reads every run the stage ever had instead of the one active entry.
 */
export const isActiveRun = sql`${stageRuns.status} in ('queued', 'running')`;

/**
 * One row per running studio process: its lease on the database. A live lease (expires_at in the
 * future, renewed by the instance's heartbeat) keeps a second studio out in single-instance mode and
 * keeps the instance's runs from being recovered by anyone else. Times come from the database's clock,
 * so hosts with skewed clocks agree on who is alive.
 */
export const instances = pgTable('instances', {
  id: uuid('id').primaryKey().defaultRandom(),
  host: text('host').notNull(),
  pid: integer('pid').notNull(),
  startedAt: timestamp('started_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  heartbeatAt: timestamp('heartbeat_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
});

/**
 * Checkpoints of running runs: only the text added since the last checkpoint, so a checkpoint's cost
 * does not grow with the length of the text. `offset` is where the piece goes (0 again after a reset).
 * Folded into stage_runs.text when the run ends, or at start-up after a crash.
 */
export const runTextChunks = pgTable(
  'run_text_chunks',
  {
    runId: uuid('run_id').notNull().references(() => stageRuns.id, { onDelete: 'cascade' }),
    seq: integer('seq').notNull(),
    offset: integer('offset').notNull(),
    text: text('text').notNull(),
  },
  (t) => [primaryKey({ columns: [t.runId, t.seq] })],
);

export const modelProviders = pgTable('model_providers', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull(),
  providerType: text('provider_type').notNull().default('llm'),
  apiUrl: text('api_url').notNull(),
  apiKeyEnc: text('api_key_enc').notNull().default(''),
  apiKeyHint: text('api_key_hint').notNull().default(''),
  modelName: text('model_name').notNull(),
  maxTokens: integer('max_tokens').notNull().default(4096),
  temperature: doublePrecision('temperature').notNull().default(0.7),
  topP: doublePrecision('top_p').notNull().default(1),
  timeoutS: integer('timeout_s').notNull().default(60),
  isActive: boolean('is_active').notNull().default(true),
  priority: integer('priority').notNull().default(0),
  weight: integer('weight').notNull().default(1),
  rateLimitRpm: integer('rate_limit_rpm'),
  rateLimitRpd: integer('rate_limit_rpd'),
  priceInputPerM: doublePrecision('price_input_per_m').notNull().default(0),
  priceOutputPerM: doublePrecision('price_output_per_m').notNull().default(0),
  /** The vendor's wire shape (DESIGN §9: chosen, never guessed from the URL). */
  apiFormat: text('api_format').notNull().default('openai'),
  /** A second secret for key pairs (Kling signs a JWT from AccessKey + SecretKey), encrypted like the key. */
  apiSecretEnc: text('api_secret_enc').notNull().default(''),
  /** Media providers: price per image, per second of video, or per 1,000 characters of speech. */
  pricePerUnit: doublePrecision('price_per_unit').notNull().default(0),
  isSimulated: boolean('is_simulated').notNull().default(false),
  lastTest: jsonb('last_test'),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

export const providerUsage = pgTable(
  'provider_usage',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    providerId: uuid('provider_id').notNull().references(() => modelProviders.id, { onDelete: 'cascade' }),
    runId: uuid('run_id'),
    model: text('model').notNull(),
    promptTokens: integer('prompt_tokens').notNull().default(0),
    completionTokens: integer('completion_tokens').notNull().default(0),
    estimated: boolean('estimated').notNull().default(false),
    ttftMs: integer('ttft_ms'),
    durationMs: integer('duration_ms'),
    outcome: text('outcome').notNull(),
    cost: doublePrecision('cost').notNull().default(0),
    createdAt: createdAt(),
  },
  (t) => [index('provider_usage_provider_idx').on(t.providerId, t.createdAt)],
);

export const storyboardShots = pgTable(
  'storyboard_shots',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    projectId: uuid('project_id').notNull().references(() => projects.id, { onDelete: 'cascade' }),
    sequenceNumber: integer('sequence_number').notNull(),
    sceneDescription: text('scene_description').notNull().default(''),
    narrationText: text('narration_text').notNull().default(''),
    imagePrompt: text('image_prompt').notNull().default(''),
    durationSeconds: doublePrecision('duration_seconds').notNull().default(3),
    speaker: text('speaker'),
    durationLocked: boolean('duration_locked').notNull().default(false),
    /** Per-shot choices of the media stages (the chosen image, a clip method that overrides the project's …), keyed by stage. */
    mediaSettings: jsonb('media_settings').$type<Record<string, Record<string, unknown>>>().notNull().default(sql`'{}'::jsonb`),
    createdAt: createdAt(),
  },
  (t) => [index('storyboard_shots_project_idx').on(t.projectId, t.sequenceNumber)],
);

/**
 * Finished items of media runs (an image, a shot's narration, a clip), saved as each finishes: an
 * interrupted or cancelled run keeps them, and a run whose events left memory replays them from here.
 * Shots may be deleted later; their items stay in the history (no foreign key to the shot).
 */
export const runItems = pgTable(
  'run_items',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    runId: uuid('run_id').notNull().references(() => stageRuns.id, { onDelete: 'cascade' }),
    seq: integer('seq').notNull(),
    shotId: uuid('shot_id').notNull(),
    /** The event type that carried it: image, audio or clip. */
    kind: text('kind').notNull(),
    mediaId: uuid('media_id'),
    item: jsonb('item').notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('run_items_run_seq_uq').on(t.runId, t.seq), index('run_items_shot_idx').on(t.shotId)],
);

/** Stored media files (DESIGN §9): content-addressed under DATA_DIR/media by sha256. */
export const media = pgTable(
  'media',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    projectId: uuid('project_id').notNull().references(() => projects.id, { onDelete: 'cascade' }),
    kind: text('kind').notNull(),
    mime: text('mime').notNull(),
    bytes: integer('bytes').notNull(),
    sha256: text('sha256').notNull(),
    width: integer('width'),
    height: integer('height'),
    durationS: doublePrecision('duration_s'),
    source: text('source').notNull().default('generated'),
    createdBy: uuid('created_by'),
    createdAt: createdAt(),
  },
  (t) => [index('media_project_idx').on(t.projectId), index('media_sha_idx').on(t.sha256)],
);

export const cameraMovements = pgTable('camera_movements', {
  id: uuid('id').primaryKey().defaultRandom(),
  projectId: uuid('project_id').notNull().references(() => projects.id, { onDelete: 'cascade' }),
  shotId: uuid('shot_id').notNull().unique().references(() => storyboardShots.id, { onDelete: 'cascade' }),
  movementType: text('movement_type').notNull(),
  params: jsonb('params').notNull(),
});

/** A set of prompt templates, one per stage. Shipped sets have no owner and only admins change them. */
export const promptSets = pgTable('prompt_sets', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull(),
  description: text('description').notNull().default(''),
  ownerId: uuid('owner_id').references(() => users.id, { onDelete: 'cascade' }),
  isDefault: boolean('is_default').notNull().default(false),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

export const promptTemplates = pgTable(
  'prompt_templates',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    setId: uuid('set_id').notNull().references(() => promptSets.id, { onDelete: 'cascade' }),
    stage: text('stage').notNull(),
    content: text('content').notNull(),
    /** Declared variables: [{ name, type, description }]. */
    variables: jsonb('variables').notNull().default(sql`'[]'::jsonb`),
    version: integer('version').notNull().default(1),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex('prompt_templates_set_stage_uq').on(t.setId, t.stage)],
);

/** Every save of a template is a version; older ones can be viewed and restored. */
export const promptTemplateVersions = pgTable(
  'prompt_template_versions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    templateId: uuid('template_id').notNull().references(() => promptTemplates.id, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    content: text('content').notNull(),
    variables: jsonb('variables').notNull(),
    createdBy: uuid('created_by'),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('prompt_template_versions_uq').on(t.templateId, t.version)],
);

export type UserRow = typeof users.$inferSelect;
export type ProjectRow = typeof projects.$inferSelect;
export type StageRow = typeof projectStages.$inferSelect;
export type RunRow = typeof stageRuns.$inferSelect;
export type RunItemRow = typeof runItems.$inferSelect;
export type MediaRow = typeof media.$inferSelect;
export type ProviderRow = typeof modelProviders.$inferSelect;
export type InstanceRow = typeof instances.$inferSelect;
