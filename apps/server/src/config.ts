import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { accessSync, constants as fsConstants, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

/** A count from the environment: a whole number from `min` to `max`, said so in every refusal. */
const wholeNumber = (min: number, max: number) => {
  const message = `must be a whole number from ${min} to ${max}`;
  return z.coerce.number({ error: message }).int(message).min(min, message).max(max, message);
};

/** Environment -> typed config (DESIGN §7). The only file that reads process.env. */
const Env = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://')
    .optional(),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://').optional(),
  /** Prefix of every Redis key (scale-out mode): studios of different databases can share one Redis. */
  REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be 1–64 letters, digits or _ . : -').default('ai-story:'),
  APP_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  ADMIN_EMAIL: z.email().optional(),
  ADMIN_PASSWORD: z.string().min(8, 'must be at least 8 characters').optional(),
  OPENAI_API_KEY: z.string().min(1).optional(),
  OPENAI_API_URL: z.url().optional(),
  OPENAI_MODEL: z.string().min(1).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  WEB_DIST: z.string().optional(),
  LOGIN_RATE_LIMIT: z.coerce.number().int().min(1).max(100_000).default(10),
  FFMPEG_PATH: z.string().min(1).optional(),
  FFPROBE_PATH: z.string().min(1).optional(),
  /** Local CPU renders at once; one core is left to the API so it keeps answering while clips render. */
  MEDIA_CONCURRENCY: wholeNumber(1, 64).optional(),
  /** Connections of the main PostgreSQL pool (PostgreSQL mode). */
  DATABASE_POOL_SIZE: wholeNumber(1, 100).optional(),
  /** How long a studio's database lease lasts without a heartbeat (PostgreSQL mode); renewed three times as often. */
  INSTANCE_LEASE_S: z.coerce.number({ error: 'must be a number of seconds from 1 to 3600' }).min(1, 'must be a number of seconds from 1 to 3600').max(3600, 'must be a number of seconds from 1 to 3600').default(30),
  /** Where runs execute: in the API instance that starts them, or in worker processes (`npm run worker`; needs REDIS_URL and DATABASE_URL). */
  RUNS_IN: z.enum(['here', 'workers'], { error: 'must be here or workers' }).default('here'),
  /** Runs a worker process executes at once. */
  WORKER_CONCURRENCY: wholeNumber(1, 256).default(8),
  /** Enables GET /metrics; Prometheus sends it as `Authorization: Bearer …`. */
  METRICS_TOKEN: z
    .string()
    .regex(/^[\x21-\x7e]{16,256}$/, 'must be 16–256 visible ASCII characters, no spaces (it travels in an Authorization header)')
    .optional(),
  PATH: z.string().optional(),
  TRUST_PROXY: z
    .string()
    .trim()
    .transform((v, ctx) => {
      const trust = parseTrustProxy(v);
      if (trust !== undefined) return trust;
      ctx.addIssue({ code: 'custom', message: 'must be true, false, or a comma-separated list of proxy addresses (CIDR allowed)', input: v });
      return z.NEVER;
    })
    .optional(),
});

/**
 * TRUST_PROXY as Fastify's `trustProxy` takes it: `true` (whoever connects is the proxy), `false`, or
 * the proxies' addresses. Only with it are X-Forwarded-For / -Proto believed (the client's address, https).
 */
function parseTrustProxy(value: string): boolean | string[] | undefined {
  if (value === 'true') return true;
  if (value === 'false') return false;
  const addresses = value.split(',').map((a) => a.trim());
  const isAddress = (a: string) => {
    const [ip, bits, ...rest] = a.split('/');
    if (rest.length || isIP(ip) === 0) return false;
    return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (isIP(ip) === 4 ? 32 : 128));
  };
  return addresses.every(isAddress) ? addresses : undefined;
}

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl?: string;
  /** PostgreSQL mode: connections of the main pool (unset: the database client's default). */
  poolSize?: number;
  redisUrl?: string;
  redisPrefix: string;
  appSecret: string;
  admin?: { email: string; password: string };
  openai?: { apiKey: string; apiUrl: string; model: string };
  logLevel: z.infer<typeof Env>['LOG_LEVEL'];
  webDist: string;
  /** Login attempts allowed per IP and minute. */
  loginRateLimit: number;
  /** Template test renders allowed per user and minute (each may cost a render worker up to its limits). */
  templateTestRateLimit: number;
  /** Milliseconds between heartbeats on SSE streams. */
  heartbeatMs: number;
  /** Upper bound between run checkpoints (DESIGN §4: at most once a second). */
  checkpointMs: number;
  /** Where ffmpeg/ffprobe are looked for (explicit paths first, then PATH). */
  mediaTools: { FFMPEG_PATH?: string; FFPROBE_PATH?: string; PATH?: string };
  /** Local renders in parallel, studio-wide (DESIGN §7: cores − 1, at least 1). */
  mediaConcurrency: number;
  /** Lifetime of this instance's database lease without a heartbeat (instances/lease.ts). */
  instanceLeaseMs: number;
  /** `workers`: API instances queue the runs they start, worker processes execute them (scale-out). */
  runsIn: 'here' | 'workers';
  /** Runs one worker process executes at once. */
  workerConcurrency: number;
  /** Fastify's trustProxy (TRUST_PROXY): which forwarded headers to believe; false = none. */
  trustProxy: boolean | string[];
  /** Bearer secret of the metrics scraper (METRICS_TOKEN); unset, GET /metrics does not exist. */
  metricsToken?: string;
}

export class ConfigError extends Error {}

const emptyToUndefined = (env: NodeJS.ProcessEnv) =>
  Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const parsed = Env.safeParse(emptyToUndefined(env));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`Invalid ${String(issue.path[0])}: ${issue.message}`);
  }
  const e = parsed.data;
  if ((e.ADMIN_EMAIL && !e.ADMIN_PASSWORD) || (!e.ADMIN_EMAIL && e.ADMIN_PASSWORD)) {
    throw new ConfigError('Invalid ADMIN_EMAIL/ADMIN_PASSWORD: set both or neither');
  }
  for (const name of ['FFMPEG_PATH', 'FFPROBE_PATH'] as const) {
    // A typo here must not silently fall back to another binary on PATH.
    if (e[name] && !isExecutable(e[name])) throw new ConfigError(`Invalid ${name}: ${e[name]} is not an executable file`);
  }
  if (e.RUNS_IN === 'workers' && (!e.REDIS_URL || !e.DATABASE_URL)) {
    throw new ConfigError('Invalid RUNS_IN: workers needs REDIS_URL and DATABASE_URL (API instances and workers share PostgreSQL and Redis)');
  }
  const dataDir = path.resolve(overrides.dataDir ?? e.DATA_DIR);
  return {
    port: e.PORT,
    host: e.HOST,
    dataDir,
    databaseUrl: e.DATABASE_URL,
    poolSize: e.DATABASE_POOL_SIZE,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
    appSecret: e.APP_SECRET ?? overrides.appSecret ?? loadOrCreateSecret(dataDir),
    admin: e.ADMIN_EMAIL && e.ADMIN_PASSWORD ? { email: e.ADMIN_EMAIL.toLowerCase(), password: e.ADMIN_PASSWORD } : undefined,
    openai: e.OPENAI_API_KEY
      ? { apiKey: e.OPENAI_API_KEY, apiUrl: e.OPENAI_API_URL ?? 'https://api.openai.com/v1', model: e.OPENAI_MODEL ?? 'gpt-4o-mini' }
      : undefined,
    logLevel: e.LOG_LEVEL,
    webDist: path.resolve(e.WEB_DIST ?? path.join(import.meta.dirname, '../../web/dist')),
    loginRateLimit: e.LOGIN_RATE_LIMIT,
    templateTestRateLimit: 30,
    heartbeatMs: 15_000,
    checkpointMs: 1_000,
    mediaTools: { FFMPEG_PATH: e.FFMPEG_PATH, FFPROBE_PATH: e.FFPROBE_PATH, PATH: e.PATH },
    mediaConcurrency: e.MEDIA_CONCURRENCY ?? Math.max(1, availableParallelism() - 1),
    instanceLeaseMs: Math.round(e.INSTANCE_LEASE_S * 1000),
    trustProxy: e.TRUST_PROXY ?? false,
    metricsToken: e.METRICS_TOKEN,
    runsIn: e.RUNS_IN,
    workerConcurrency: e.WORKER_CONCURRENCY,
    ...overrides,
  };
}

function isExecutable(file: string) {
  try {
    accessSync(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The generated secret lives in DATA_DIR with mode 600, created once. */
function loadOrCreateSecret(dataDir: string): string {
  const file = path.join(dataDir, 'app-secret');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('base64url');
  writeFileSync(file, secret + '\n', { mode: 0o600, flag: 'wx' });
  return secret;
}
