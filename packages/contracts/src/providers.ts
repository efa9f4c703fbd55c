import { z } from 'zod';
import { Timestamp } from './common.ts';
import { StageKey } from './stages.ts';

export const ProviderType = z.enum(['llm', 'text2image', 'image2video', 'tts']);
export type ProviderType = z.infer<typeof ProviderType>;
/**
 * The wire shape of a provider's API, per type (DESIGN §9: chosen, never guessed from the URL). The
 * first of each list is the default.
 */
export const API_FORMATS = {
  llm: ['openai'],
  text2image: ['openai', 'siliconflow', 'dashscope'],
  tts: ['openai_speech', 'edge_tts'],
  image2video: ['kling', 'seedance'],
} as const satisfies Record<ProviderType, readonly string[]>;
/**
 * What a provider's usage is counted in: tokens for LLMs; for media, the unit `price_per_unit` prices
 * (an image, a second of video, 1,000 characters of speech — the price is per thousand, the count per character).
 */
export const USAGE_UNITS = { llm: 'tokens', text2image: 'images', image2video: 'seconds', tts: 'characters' } as const satisfies Record<ProviderType, string>;
export type UsageUnit = (typeof USAGE_UNITS)[ProviderType];
export const ApiFormat = z.enum(['openai', 'siliconflow', 'dashscope', 'openai_speech', 'edge_tts', 'kling', 'seedance']);
export type ApiFormat = z.infer<typeof ApiFormat>;

export const Strategy = z.enum(['round_robin', 'random', 'weighted', 'least_loaded']);
export type Strategy = z.infer<typeof Strategy>;

const ProviderFieldsBase = z.object({
  name: z.string().trim().min(1).max(100),
  provider_type: ProviderType,
  api_url: z.url({ protocol: /^https?$/ }).max(500),
  api_key: z.string().max(500),
  model_name: z.string().trim().min(1).max(200),
  max_tokens: z.number().int().min(1).max(200_000),
  temperature: z.number().min(0).max(2),
  top_p: z.number().min(0).max(1),
  timeout_s: z.number().int().min(1).max(600),
  is_active: z.boolean(),
  priority: z.number().int().min(0).max(1000),
  weight: z.number().int().min(0).max(1000),
  rate_limit_rpm: z.number().int().min(0).max(1_000_000).nullable(),
  rate_limit_rpd: z.number().int().min(0).max(100_000_000).nullable(),
  price_input_per_m: z.number().min(0).max(10_000),
  price_output_per_m: z.number().min(0).max(10_000),
  api_format: ApiFormat,
  /** A second secret for key pairs (Kling: the SecretKey beside the AccessKey); write-only like the key. */
  api_secret: z.string().max(500),
  /** Media: price per image, per second of video, or per 1,000 characters of speech. */
  price_per_unit: z.number().min(0).max(10_000),
});
const ProviderFields = ProviderFieldsBase.extend({
  provider_type: ProviderType.default('llm'),
  api_key: z.string().max(500).default(''),
  max_tokens: ProviderFieldsBase.shape.max_tokens.default(4096),
  temperature: ProviderFieldsBase.shape.temperature.default(0.7),
  top_p: ProviderFieldsBase.shape.top_p.default(1),
  timeout_s: ProviderFieldsBase.shape.timeout_s.default(60),
  is_active: z.boolean().default(true),
  priority: ProviderFieldsBase.shape.priority.default(0),
  weight: ProviderFieldsBase.shape.weight.default(1),
  rate_limit_rpm: ProviderFieldsBase.shape.rate_limit_rpm.default(null),
  rate_limit_rpd: ProviderFieldsBase.shape.rate_limit_rpd.default(null),
  price_input_per_m: ProviderFieldsBase.shape.price_input_per_m.default(0),
  price_output_per_m: ProviderFieldsBase.shape.price_output_per_m.default(0),
  api_format: ApiFormat.optional(),
  api_secret: z.string().max(500).default(''),
  price_per_unit: ProviderFieldsBase.shape.price_per_unit.default(0),
});
export const CreateProviderBody = ProviderFields;
/** PATCH changes only what it names (no defaults here: zod 4 would fill them in); no `api_key` keeps the stored key. */
export const UpdateProviderBody = ProviderFieldsBase.partial();

/** A test's outcome: `message` in English for API clients, `code` + `params` worded by the web app (older results have no code). */
const TestOutcome = { ok: z.boolean(), latency_ms: z.number(), message: z.string(), code: z.string().optional(), params: z.record(z.string(), z.union([z.string(), z.number()])).optional() };
export const ProviderHealth = z.object({ ...TestOutcome, tested_at: Timestamp });

export const Provider = ProviderFields.omit({ api_key: true, api_secret: true }).extend({
  id: z.string(),
  api_format: ApiFormat,
  /** Whether a secret is stored (it is never returned). */
  has_api_secret: z.boolean(),
  /** The offline demo model answers `builtin:offline-demo` here. */
  api_url: z.string(),
  api_key_hint: z.string(),
  is_simulated: z.boolean(),
  last_test: ProviderHealth.nullable(),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export type Provider = z.infer<typeof Provider>;

/** What a non-admin sees: enough to choose a model for a run, never URL or key. */
export const ProviderSummary = z.object({
  id: z.string(),
  name: z.string(),
  provider_type: ProviderType,
  model_name: z.string(),
  is_simulated: z.boolean(),
});
export type ProviderSummary = z.infer<typeof ProviderSummary>;

export const ProviderTestResult = z.object(TestOutcome);

export const UsageDay = z.object({
  day: z.string(),
  calls: z.number(),
  prompt_tokens: z.number(),
  completion_tokens: z.number(),
  /** Media providers: images, seconds of video or characters of speech (see `unit`). */
  units: z.number().optional(),
  cost: z.number(),
  failures: z.number(),
});
export const ProviderUsage = z.object({
  /** What `units` counts; `tokens` for an LLM provider (which has no `units`). */
  unit: z.enum(['tokens', 'images', 'seconds', 'characters']).optional(),
  totals: UsageDay.omit({ day: true }).extend({ avg_ttft_ms: z.number().nullable() }),
  days: z.array(UsageDay),
});

export const StageRouting = z.object({
  provider_ids: z.array(z.uuid()).max(20),
  strategy: Strategy.default('round_robin'),
});
export const ModelConfig = z.partialRecord(StageKey, StageRouting);
export type ModelConfig = z.infer<typeof ModelConfig>;
