import { API_FORMATS, USAGE_UNITS, type UsageUnit, type ApiFormat, type ModelConfig, type Provider, type ProviderSummary, type ProviderType, type StageKey, type Strategy } from '@ai-story/contracts';
import { randomUUID } from 'node:crypto';
import type { AuthUser } from '../auth/service.ts';
import type { AuthRepository } from '../auth/repository.ts';
import type { Config } from '../config.ts';
import { keyHint, type Cipher } from '../crypto/cipher.ts';
import type { Db } from '../db/client.ts';
import type { ProviderRow } from '../db/schema.ts';
import { AppError, forbidden, notFound } from '../errors.ts';
import { testConnection, type ConnectionTestResult } from './connection-test.ts';
import { testMediaConnection } from './media/provider-test.ts';
import { OFFLINE_DEMO_NAME, OFFLINE_DEMO_URL, type OfflineDemoUpstream } from './offline-demo.ts';
import { ReadCache } from '../read-cache.ts';
import { vendorSnippet } from './redact.ts';
import type { ProviderRepository, UsageValues } from './repository.ts';
import { ProviderLimitError } from './media/errors.ts';
import type { ProviderLimiter } from './selector.ts';
import type { StudioMetrics } from '../metrics/metrics.ts';

/** A provider as the LLM client needs it: decrypted key, resolved URL. Never leaves the server. */
export interface ClientProvider {
  id: string;
  name: string;
  api_url: string;
  api_key: string;
  model_name: string;
  max_tokens: number;
  temperature: number;
  top_p: number;
  timeout_s: number;
  is_simulated: boolean;
  price_input_per_m: number;
  price_output_per_m: number;
  api_format: ApiFormat;
  /** Decrypted only for the call (Kling's SecretKey); empty when none is stored. */
  api_secret: string;
  price_per_unit: number;
  provider_type: ProviderType;
  /** Its admin's limits: each call is counted against them (ProviderLimiter.begin). */
  rate_limit_rpm: number | null;
  rate_limit_rpd: number | null;
}

/** One media vendor call, as MediaServices.recordUsage takes it. `outcome`: `ok`, or the MediaErrorCode of the failure. */
export interface MediaUsage {
  units: number;
  unit: Exclude<UsageUnit, 'tokens'>;
  durationMs: number;
  outcome: string;
  runId?: string | null;
}

type ProviderInput = {
  name?: string;
  provider_type?: string;
  api_url?: string;
  api_key?: string;
  model_name?: string;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  timeout_s?: number;
  is_active?: boolean;
  priority?: number;
  weight?: number;
  rate_limit_rpm?: number | null;
  rate_limit_rpd?: number | null;
  price_input_per_m?: number;
  price_output_per_m?: number;
  api_format?: ApiFormat;
  api_secret?: string;
  price_per_unit?: number;
};

const DEMO_DELETED = 'offline_demo_deleted';
const ROUTING = 'model_routing';
/** How long the global routing read may be shared (every run start without a chosen provider asks for it). */
const ROUTING_CACHE_MS = 5_000;

export class ProviderService {
  private readonly routing = new ReadCache<ModelConfig>(ROUTING_CACHE_MS);

  constructor(
    private readonly repo: ProviderRepository,
    private readonly settings: AuthRepository,
    private readonly cipher: Cipher,
    private readonly demo: OfflineDemoUpstream,
    readonly selector: ProviderLimiter,
    /** Provider calls are measured where they are recorded: latencies, and failures by code. */
    readonly metrics: StudioMetrics,
  ) {}

  /** At start-up: the environment's provider (as in the seed), else the offline demo model. */
  async ensureDefaults(config: Config) {
    const all = await this.repo.list('llm');
    if (config.openai) {
      const existing = all.find((p) => p.name === 'OpenAI (environment)');
      const values = {
        apiUrl: config.openai.apiUrl,
        apiKeyEnc: this.cipher.encrypt(config.openai.apiKey),
        apiKeyHint: keyHint(config.openai.apiKey),
        modelName: config.openai.model,
      };
      if (existing) await this.repo.update(existing.id, values);
      else await this.repo.insert({ name: 'OpenAI (environment)', providerType: 'llm', priority: 10, ...values });
      return;
    }
    if (all.some((p) => p.isActive) || (await this.settings.getSetting(DEMO_DELETED, false))) return;
    if (all.some((p) => p.isSimulated)) return;
    await this.repo.insert({
      name: OFFLINE_DEMO_NAME,
      providerType: 'llm',
      apiUrl: OFFLINE_DEMO_URL,
      modelName: 'ai-story-demo',
      isSimulated: true,
      timeoutS: 30,
      maxTokens: 2048,
    });
  }

  async list(user: AuthUser): Promise<Provider[] | ProviderSummary[]> {
    const rows = await this.repo.list();
    if (user.role === 'admin') return rows.map(toProvider);
    return rows.filter((r) => r.isActive).map(toSummary);
  }

  async get(user: AuthUser, id: string) {
    const row = await this.repo.find(id);
    if (!row) throw notFound('Provider');
    if (user.role !== 'admin') {
      if (!row.isActive) throw notFound('Provider');
      return toSummary(row);
    }
    return toProvider(row);
  }

  async create(user: AuthUser, input: Required<Omit<ProviderInput, 'rate_limit_rpm' | 'rate_limit_rpd' | 'api_format'>> & ProviderInput) {
    requireAdmin(user);
    const type = (input.provider_type ?? 'llm') as ProviderType;
    const apiFormat = checkedFormat(type, input.api_format);
    return toProvider(await this.repo.insert({ ...this.toColumns({ ...input, api_format: apiFormat }) }));
  }

  async update(user: AuthUser, id: string, patch: ProviderInput) {
    requireAdmin(user);
    const row = await this.repo.find(id);
    if (!row) throw notFound('Provider');
    const type = (patch.provider_type ?? row.providerType) as ProviderType;
    // A type change without a format takes the new type's default; a format must suit the type.
    const format = patch.api_format ?? (patch.provider_type && patch.provider_type !== row.providerType ? undefined : (row.apiFormat as ApiFormat));
    requireCredentialsForNewUrl(row, patch);
    return toProvider(await this.repo.update(id, this.toColumns({ ...patch, api_format: checkedFormat(type, format) })));
  }

  async remove(user: AuthUser, id: string) {
    requireAdmin(user);
    const row = await this.repo.find(id);
    if (!row) throw notFound('Provider');
    await this.repo.delete(id);
    // Once an admin removes the offline demo it stays removed (DESIGN §5).
    if (row.isSimulated) await this.settings.setSetting(DEMO_DELETED, true);
  }

  async test(user: AuthUser, id: string) {
    requireAdmin(user);
    const row = await this.repo.find(id);
    if (!row) throw notFound('Provider');
    const type = row.providerType as ProviderType;
    const client = await this.clientProvider(row);
    const result = redacted(type === 'llm' ? await testConnection(client) : await testMediaConnection(type, client), [client.api_key, client.api_secret]);
    await this.repo.update(id, { lastTest: { ...result, tested_at: new Date().toISOString() } });
    return result;
  }

  async usage(user: AuthUser, id: string, days = 30) {
    requireAdmin(user);
    const provider = await this.repo.find(id);
    if (!provider) throw notFound('Provider');
    const unit = USAGE_UNITS[provider.providerType as ProviderType];
    const since = new Date(Date.now() - days * 24 * 3600_000);
    const rows = await this.repo.usageByDay(id, since);
    const sum = (k: 'calls' | 'prompt_tokens' | 'completion_tokens' | 'cost' | 'failures') => rows.reduce((a, r) => a + Number(r[k]), 0);
    const ttftN = rows.reduce((a, r) => a + Number(r.ttft_n), 0);
    // Media rows keep their unit count in completion_tokens (see recordMediaUsage); named here for what it is.
    const media = unit !== 'tokens';
    return {
      unit,
      totals: {
        calls: sum('calls'),
        prompt_tokens: sum('prompt_tokens'),
        completion_tokens: sum('completion_tokens'),
        ...(media && { units: sum('completion_tokens') }),
        cost: sum('cost'),
        failures: sum('failures'),
        avg_ttft_ms: ttftN ? rows.reduce((a, r) => a + Number(r.ttft_sum), 0) / ttftN : null,
      },
      days: rows.map(({ ttft_sum: _s, ttft_n: _n, ...day }) => ({ ...day, ...(media && { units: Number(day.completion_tokens) }), cost: Number(day.cost) })),
    };
  }

  /**
   * One media vendor call's usage: the unit count (images, seconds of video, characters of speech) is
   * kept in `completion_tokens` — a media provider has no tokens, and its type fixes the unit — and the
   * cost is units × price_per_unit (speech is priced per 1,000 characters). Answers the cost.
   */
  async recordMediaUsage(p: ClientProvider, u: MediaUsage) {
    const perUnit = u.unit === 'characters' ? p.price_per_unit / 1000 : p.price_per_unit;
    const cost = u.outcome === 'ok' ? u.units * perUnit : 0;
    this.metrics.providerFailed(p.provider_type, u.outcome);
    await this.repo.insertUsage({
      id: randomUUID(),
      providerId: p.id,
      runId: u.runId ?? null,
      model: p.model_name,
      promptTokens: 0,
      completionTokens: Math.round(u.units),
      estimated: false,
      ttftMs: null,
      durationMs: Math.round(u.durationMs),
      outcome: u.outcome,
      cost,
    });
    return cost;
  }

  /**
   * An LLM call's cost, known at once, and `save`, which writes its usage row (on `db`, a transaction it
   * shares, or the pool). The row's id is made here, so saving it again after a failed attempt adds nothing.
   */
  llmUsage(p: ClientProvider, u: { runId?: string; promptTokens: number; completionTokens: number; estimated: boolean; ttftMs: number | null; durationMs: number; outcome: string }) {
    const cost = (u.promptTokens * p.price_input_per_m + u.completionTokens * p.price_output_per_m) / 1_000_000;
    this.metrics.providerFailed(p.provider_type, u.outcome);
    if (u.ttftMs !== null) this.metrics.ttft.observe(u.ttftMs / 1000);
    const values: UsageValues = {
      id: randomUUID(),
      providerId: p.id,
      runId: u.runId ?? null,
      model: p.model_name,
      promptTokens: u.promptTokens,
      completionTokens: u.completionTokens,
      estimated: u.estimated,
      ttftMs: u.ttftMs === null ? null : Math.round(u.ttftMs),
      durationMs: Math.round(u.durationMs),
      outcome: u.outcome,
      cost,
    };
    return { cost, save: (db?: Db) => this.repo.insertUsage(values, db) };
  }

  // ---- routing ----
  globalRouting = () => this.routing.get(ROUTING, () => this.settings.getSetting<ModelConfig>(ROUTING, {}));
  async setGlobalRouting(user: AuthUser, config: ModelConfig) {
    requireAdmin(user);
    await this.assertKnown(config);
    await this.settings.setSetting(ROUTING, config);
    this.routing.clear();
    return config;
  }

  async assertKnown(config: ModelConfig) {
    const known = new Set((await this.repo.list()).map((p) => p.id));
    for (const [stage, routing] of Object.entries(config)) {
      routing?.provider_ids.forEach((id, i) => {
        if (!known.has(id)) throw new AppError(400, 'validation_error', `Unknown provider ${id}`, { fields: { [`${stage}.provider_ids.${i}`]: 'Unknown provider' } });
      });
    }
  }

  /**
   * Providers to try for a stage, in order: an explicit choice, else the project's list, else the
   * global list, else every active LLM provider by priority; the strategy picks the first.
   */
  /** The providers of a type that may serve a stage, in the order to try them (fail-over follows it). */
  async candidatesFor(type: ProviderType, stage: StageKey, opts: { providerId?: string; projectConfig?: ModelConfig }) {
    const routing = opts.projectConfig?.[stage] ?? (await this.globalRouting())[stage];
    let all = await this.repo.list(type);
    // The shared read may predate a provider another instance just added (scale-out mode): a provider
    // asked for by id but missing, or none active, is worth one fresh read before refusing.
    const wanted = opts.providerId ? [opts.providerId] : (routing?.provider_ids ?? []);
    if (wanted.some((id) => !all.some((p) => p.id === id)) || !all.some((p) => p.isActive)) all = await this.repo.list(type, { fresh: true });
    if (opts.providerId) {
      const chosen = all.find((p) => p.id === opts.providerId);
      if (!chosen) throw new AppError(400, 'validation_error', 'Unknown provider', { fields: { provider_id: 'Unknown provider' } });
      if (!chosen.isActive) throw new AppError(400, 'validation_error', 'This provider is switched off', { fields: { provider_id: 'Inactive provider' } });
      return { order: [chosen], skipped: [] as { id: string; reason: string; retryAfterMs?: number }[], cooling: [] as { id: string; reason: string }[] };
    }
    const byId = new Map(all.map((p) => [p.id, p]));
    const routed = routing?.provider_ids.length ? routing.provider_ids.map((id) => byId.get(id)).filter((p): p is ProviderRow => !!p) : all;
    // A simulated provider is never chosen automatically once a real one of its type is active (it
    // stays selectable by hand, labelled): a run named after a real model must carry its text.
    const real = routed.filter((p) => !p.isSimulated && p.isActive);
    const list = real.length ? real : routed;
    const strategy: Strategy = routing?.strategy ?? 'round_robin';
    return await this.selector.select(list, strategy, `${stage}:${routing ? routing.provider_ids.join(',') : 'all'}`);
  }

  /** MediaServices.beginCall: the provider's limits and cool-down, shared across instances in scale-out mode. */
  async beginMediaCall(p: ClientProvider): Promise<(outcome: 'ok' | 'failed') => void> {
    const end = await this.selector.begin(p.id, { rateLimitRpm: p.rate_limit_rpm, rateLimitRpd: p.rate_limit_rpd });
    if (typeof end !== 'function') throw new ProviderLimitError(p.name, end.reason);
    return end;
  }

  /** The providers a run was given when it started, in that order (a worker executing a queued run). */
  async clientProvidersById(ids: string[]): Promise<ClientProvider[]> {
    const rows = await Promise.all(ids.map((id) => this.repo.find(id)));
    return Promise.all(rows.filter((r): r is ProviderRow => !!r).map((r) => this.clientProvider(r)));
  }

  async clientProvider(row: ProviderRow): Promise<ClientProvider> {
    return {
      id: row.id,
      name: row.name,
      api_url: row.apiUrl === OFFLINE_DEMO_URL ? await this.demo.url() : row.apiUrl,
      api_key: row.apiKeyEnc ? this.cipher.decrypt(row.apiKeyEnc) : row.isSimulated ? 'offline-demo' : '',
      model_name: row.modelName,
      max_tokens: row.maxTokens,
      temperature: row.temperature,
      top_p: row.topP,
      timeout_s: row.timeoutS,
      is_simulated: row.isSimulated,
      price_input_per_m: row.priceInputPerM,
      price_output_per_m: row.priceOutputPerM,
      api_format: row.apiFormat as ApiFormat,
      api_secret: row.apiSecretEnc ? this.cipher.decrypt(row.apiSecretEnc) : '',
      price_per_unit: row.pricePerUnit,
      provider_type: row.providerType as ProviderType,
      rate_limit_rpm: row.rateLimitRpm,
      rate_limit_rpd: row.rateLimitRpd,
    };
  }

  private toColumns(input: ProviderInput) {
    const c: Partial<typeof import('../db/schema.ts').modelProviders.$inferInsert> = {};
    if (input.name !== undefined) c.name = input.name;
    if (input.provider_type !== undefined) c.providerType = input.provider_type;
    if (input.api_url !== undefined) c.apiUrl = input.api_url;
    // An empty or absent key keeps the stored one (the form never sees it to send it back).
    if (input.api_key) {
      c.apiKeyEnc = this.cipher.encrypt(input.api_key);
      c.apiKeyHint = keyHint(input.api_key);
    }
    if (input.model_name !== undefined) c.modelName = input.model_name;
    if (input.max_tokens !== undefined) c.maxTokens = input.max_tokens;
    if (input.temperature !== undefined) c.temperature = input.temperature;
    if (input.top_p !== undefined) c.topP = input.top_p;
    if (input.timeout_s !== undefined) c.timeoutS = input.timeout_s;
    if (input.is_active !== undefined) c.isActive = input.is_active;
    if (input.priority !== undefined) c.priority = input.priority;
    if (input.weight !== undefined) c.weight = input.weight;
    if (input.rate_limit_rpm !== undefined) c.rateLimitRpm = input.rate_limit_rpm;
    if (input.rate_limit_rpd !== undefined) c.rateLimitRpd = input.rate_limit_rpd;
    if (input.price_input_per_m !== undefined) c.priceInputPerM = input.price_input_per_m;
    if (input.price_output_per_m !== undefined) c.priceOutputPerM = input.price_output_per_m;
    if (input.api_format !== undefined) c.apiFormat = input.api_format;
    if (input.api_secret) c.apiSecretEnc = this.cipher.encrypt(input.api_secret);
    if (input.price_per_unit !== undefined) c.pricePerUnit = input.price_per_unit;
    return c as typeof import('../db/schema.ts').modelProviders.$inferInsert;
  }
}

/** The provider's wire shape: the type's default when none is given, refused when it does not suit the type. */
function checkedFormat(type: ProviderType, format: ApiFormat | undefined): ApiFormat {
  const allowed: readonly ApiFormat[] = API_FORMATS[type];
  if (format === undefined) return allowed[0];
  if (!allowed.includes(format)) {
    throw new AppError(400, 'validation_error', `api_format: a ${type} provider speaks ${allowed.join(' or ')}`, { fields: { api_format: `One of ${allowed.join(', ')}` } });
  }
  return format;
}

/**
 * A stored key goes only to the URL it was entered for: a PATCH that moves the provider to another
 * URL must bring the key (and secret) again, or the next test would hand them to the new host
 * (issue 15, finding 6).
 */
function requireCredentialsForNewUrl(row: ProviderRow, patch: ProviderInput) {
  if (patch.api_url === undefined || patch.api_url === row.apiUrl) return;
  const fields: Record<string, string> = {};
  if (row.apiKeyEnc && !patch.api_key) fields.api_key = 'Enter the API key again to use it with a new API URL';
  if (row.apiSecretEnc && !patch.api_secret) fields.api_secret = 'Enter the API secret again to use it with a new API URL';
  const [first] = Object.entries(fields);
  if (first) throw new AppError(400, 'validation_error', `${first[0]}: ${first[1]}`, { fields });
}

/** A test result as an admin sees it: the vendor's words short, and nothing of the credentials in them. */
function redacted(result: ConnectionTestResult, secrets: string[]): ConnectionTestResult {
  const params = Object.fromEntries(Object.entries(result.params).map(([k, v]) => [k, typeof v === 'string' ? vendorSnippet(v, secrets, 200) : v]));
  return { ...result, message: vendorSnippet(result.message, secrets, 400), params };
}

function requireAdmin(user: AuthUser) {
  if (user.role !== 'admin') throw forbidden('Only an admin can manage model providers');
}

const toSummary = (r: ProviderRow): ProviderSummary => ({
  id: r.id,
  name: r.name,
  provider_type: r.providerType as ProviderSummary['provider_type'],
  model_name: r.modelName,
  is_simulated: r.isSimulated,
});

export const toProvider = (r: ProviderRow): Provider => ({
  id: r.id,
  name: r.name,
  provider_type: r.providerType as Provider['provider_type'],
  api_url: r.apiUrl,
  api_key_hint: r.apiKeyHint,
  model_name: r.modelName,
  max_tokens: r.maxTokens,
  temperature: r.temperature,
  top_p: r.topP,
  timeout_s: r.timeoutS,
  is_active: r.isActive,
  priority: r.priority,
  weight: r.weight,
  rate_limit_rpm: r.rateLimitRpm,
  rate_limit_rpd: r.rateLimitRpd,
  price_input_per_m: r.priceInputPerM,
  price_output_per_m: r.priceOutputPerM,
  api_format: r.apiFormat as Provider['api_format'],
  has_api_secret: r.apiSecretEnc !== '',
  price_per_unit: r.pricePerUnit,
  is_simulated: r.isSimulated,
  last_test: (r.lastTest as Provider['last_test']) ?? null,
  created_at: r.createdAt.toISOString(),
  updated_at: r.updatedAt.toISOString(),
});
