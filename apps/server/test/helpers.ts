import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { expectedText } from '@ai-story/fake-llm';
import { buildApp, type BuildOptions } from '../src/app.ts';
import { rewriteStage } from '../src/stages/rewrite.ts';
import { loadConfig, type Config } from '../src/config.ts';
import { openDatabase, type Database } from '../src/db/client.ts';

export const TEST_DB = (process.env.TEST_DB ?? 'pglite') as 'pglite' | 'postgres';
const SERVER_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const MIGRATIONS = path.join(import.meta.dirname, '../src/db/migrations');

export interface TestDatabase {
  /** Options that reopen the same database (restart tests). */
  location: { dataDir: string; databaseUrl?: string };
  open(): Promise<Database>;
  destroy(): Promise<void>;
}

/**
 * What an older studio left behind: its database migrated only up to (and including) the migration
 * `upTo`, with `seed` run on it. Opening the test database then migrates the rest, as an upgrade does.
 */
export interface OlderDatabase {
  upTo: string;
  /** Writes the older version's rows (raw SQL: today's schema has columns the older one lacks). */
  seed(database: Database): Promise<void>;
}

/**
 * A fresh database per test file. PGlite costs seconds to initialise, so one migrated folder is made
 * once per migration set and copied (DESIGN §2); PostgreSQL gets a database of its own on the server.
 */
export async function createTestDatabase(older?: OlderDatabase): Promise<TestDatabase> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ai-story-test-'));
  if (TEST_DB === 'postgres') {
    const { default: postgres } = await import('postgres');
    const name = `ai_story_test_${randomUUID().replaceAll('-', '')}`;
    const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    await admin.end();
    const url = new URL(SERVER_URL);
    url.pathname = `/${name}`;
    if (older) await prepareOlder({ dataDir, databaseUrl: url.toString() }, older);
    return {
      location: { dataDir, databaseUrl: url.toString() },
      open: () => openDatabase({ dataDir, databaseUrl: url.toString() }),
      async destroy() {
        const a = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
        await a.unsafe(`drop database if exists ${name} with (force)`);
        await a.end();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  }
  if (older) await prepareOlder({ dataDir }, older);
  else cpSync(await pgliteTemplate(), dataDir, { recursive: true });
  return {
    location: { dataDir },
    open: () => openDatabase({ dataDir }),
    destroy: async () => rmSync(dataDir, { recursive: true, force: true }),
  };
}

async function prepareOlder(location: { dataDir: string; databaseUrl?: string }, older: OlderDatabase) {
  // The history up to `upTo`: its SQL files and a journal that ends there.
  const journal = JSON.parse(readFileSync(path.join(MIGRATIONS, 'meta/_journal.json'), 'utf8')) as { entries: { tag: string }[] };
  const last = journal.entries.findIndex((e) => e.tag === older.upTo);
  if (last < 0) throw new Error(`No migration ${older.upTo}`);
  const folder = mkdtempSync(path.join(os.tmpdir(), 'ai-story-migrations-'));
  try {
    mkdirSync(path.join(folder, 'meta'));
    const entries = journal.entries.slice(0, last + 1);
    writeFileSync(path.join(folder, 'meta/_journal.json'), JSON.stringify({ ...journal, entries }));
    for (const e of entries) cpSync(path.join(MIGRATIONS, `${e.tag}.sql`), path.join(folder, `${e.tag}.sql`));
    const database = await openDatabase({ ...location, migrationsFolder: folder });
    try {
      await older.seed(database);
    } finally {
      await database.close();
    }
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

async function pgliteTemplate(): Promise<string> {
  const hash = createHash('sha256');
  for (const f of readdirSync(MIGRATIONS).filter((f) => f.endsWith('.sql')).sort()) hash.update(readFileSync(path.join(MIGRATIONS, f)));
  const template = path.join(os.tmpdir(), `ai-story-pglite-template-${hash.digest('hex').slice(0, 12)}`);
  if (existsSync(template)) return template;
  const building = mkdtempSync(path.join(os.tmpdir(), 'ai-story-template-building-'));
  const db = await openDatabase({ dataDir: building });
  await db.close();
  try {
    renameSync(building, template); // atomic: a parallel worker that lost the race keeps the winner's copy
  } catch {
    rmSync(building, { recursive: true, force: true });
  }
  return template;
}

/** One row of the route table the guard enforces: every route not marked public needs a user. */
export interface RouteEntry {
  method: string;
  url: string;
  public: boolean;
}

export interface TestStudio {
  app: FastifyInstance;
  /** The app's routes, one row per method, read when called (`publicly` marks a route after it is added). */
  routes(): RouteEntry[];
  url: string;
  config: Config;
  database: Database;
  testDb: TestDatabase;
  close(opts?: { keepDatabase?: boolean }): Promise<void>;
}

/** A real studio on a real port with a fresh database. */
export async function startStudio(
  overrides: Partial<Config> = {},
  existing?: TestDatabase,
  logStream?: NodeJS.WritableStream,
  build: Pick<BuildOptions, 'stages' | 'onRoute'> = {},
): Promise<TestStudio> {
  const testDb = existing ?? (await createTestDatabase());
  const database = await testDb.open();
  // TEST_REDIS=1: the studio runs in scale-out mode (run events through Redis), under a prefix of its own.
  const redis = process.env.TEST_REDIS ? { redisUrl: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', redisPrefix: `test-${randomUUID()}:` } : {};
  const config = loadConfig(
    { LOG_LEVEL: logStream ? 'info' : 'silent' },
    { dataDir: testDb.location.dataDir, appSecret: 'test-secret-test-secret-test-secret-0123', loginRateLimit: 1000, ...redis, ...overrides },
  );
  const added: RouteOptions[] = [];
  const onRoute = (route: RouteOptions) => {
    added.push(route);
    build.onRoute?.(route);
  };
  const app = await buildApp(config, { database, logStream, ...build, onRoute }).catch(async (err) => {
    await database.close(); // a studio that refused to start leaves no connection behind
    throw err;
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    app,
    routes: () => added.flatMap((r) => [r.method].flat().map((method) => ({ method, url: r.url, public: r.config?.public === true }))),
    url: `http://127.0.0.1:${port}`,
    config,
    database,
    testDb,
    async close(opts) {
      await app.close();
      await database.close();
      if (!opts?.keepDatabase) await testDb.destroy();
    },
  };
}

/** A tiny HTTP client that keeps a session cookie or a Bearer token, like a browser or a script would. */
export class Client {
  cookie = '';
  token = '';
  constructor(readonly base: string) {}

  async request(method: string, url: string, body?: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(this.base + url, {
      method,
      headers: {
        ...(body !== undefined && { 'content-type': 'application/json' }),
        ...(this.cookie && { cookie: this.cookie }),
        ...(this.token && { authorization: `Bearer ${this.token}` }),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const setCookie = res.headers.get('set-cookie');
    if (setCookie) this.cookie = setCookie.split(';')[0];
    const text = await res.text();
    let json: any = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    return { status: res.status, body: json, headers: res.headers };
  }
  get = (url: string, headers?: Record<string, string>) => this.request('GET', url, undefined, headers);
  post = (url: string, body?: unknown, headers?: Record<string, string>) => this.request('POST', url, body ?? {}, headers);
  patch = (url: string, body: unknown) => this.request('PATCH', url, body);
  put = (url: string, body: unknown) => this.request('PUT', url, body);
  delete = (url: string) => this.request('DELETE', url);
}

/** The whole text the simulated model answers to a rewrite run (its prompt and model as the run recorded them). */
export const expectedRewrite = (run: { model: string; prompt: string }) =>
  expectedText({
    model: run.model,
    messages: [
      { role: 'system', content: rewriteStage.systemPrompt },
      { role: 'user', content: run.prompt },
    ],
  });

/** A run once it has ended (any status but running or queued), read through `client`'s API. */
export async function endedRun(client: Client, runId: string, timeoutMs = 20_000) {
  for (const until = Date.now() + timeoutMs; Date.now() < until; await new Promise((r) => setTimeout(r, 50))) {
    const run = (await client.get(`/api/v1/runs/${runId}/`)).body;
    if (run.status !== 'running' && run.status !== 'queued') return run;
  }
  throw new Error(`run ${runId} did not end within ${timeoutMs / 1000} s`);
}

export const ADMIN = { email: 'admin@example.com', name: 'Admin', password: 'correct horse battery' };

/** Sets up the first admin and returns a signed-in client. */
export async function setupAdmin(studio: TestStudio) {
  const admin = new Client(studio.url);
  const res = await admin.post('/api/v1/auth/setup', ADMIN);
  if (res.status !== 201) throw new Error(`setup failed: ${res.status} ${JSON.stringify(res.body)}`);
  return admin;
}

/** Creates a user through the admin API and returns a client signed in as them. */
export async function createUser(studio: TestStudio, admin: Client, email: string, role: 'user' | 'admin' = 'user') {
  const password = 'password-' + email;
  const res = await admin.post('/api/v1/users/', { email, name: email.split('@')[0], password, role });
  if (res.status !== 201) throw new Error(`create user failed: ${res.status} ${JSON.stringify(res.body)}`);
  const client = new Client(studio.url);
  const login = await client.post('/api/v1/auth/login', { email, password });
  if (login.status !== 200) throw new Error('login failed');
  return Object.assign(client, { id: res.body.id as string });
}

/** A hash and row count of every table of the schema: "nothing changed" checks compare two snapshots. */
export async function snapshot(database: Database) {
  const { sql, is } = await import('drizzle-orm');
  const { PgTable, getTableConfig } = await import('drizzle-orm/pg-core');
  const schema = await import('../src/db/schema.ts');
  // Derived from the schema, so a new table is in every snapshot without anyone remembering to add it.
  const tables = Object.values(schema)
    .filter((t) => is(t, PgTable))
    .map((t) => getTableConfig(t as InstanceType<typeof PgTable>).name)
    // The studio's own lease is renewed by a clock, not by requests: it is not the data a request may change.
    .filter((name) => name !== 'instances');
  const out: Record<string, unknown> = {};
  for (const t of tables) {
    const r: any = await database.db.execute(sql.raw(`select md5(coalesce(string_agg(x::text, ',' order by x::text), '')) as h, count(*)::int as n from ${t} x`));
    out[t] = (r.rows ?? r)[0];
  }
  return out;
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

export interface StudioProcessOptions {
  /** The script it runs, relative to the repository root (main.ts by default). */
  entry?: string;
  /** Environment beside the test defaults (e.g. INSTANCE_LEASE_S). */
  env?: Record<string, string>;
  /** Receives what the studio writes to stdout (its log lines) instead of this process's stdout. */
  onStdout?: (text: string) => void;
}

/**
 * Starts a studio process and waits until it either answers /healthz or exits (a studio that must
 * refuse to start): `exited` carries its code and what it wrote to stderr.
 */
export async function startStudioProcess(testDb: TestDatabase, opts: StudioProcessOptions = {}) {
  const entry = opts.entry ?? 'apps/server/src/main.ts';
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: path.resolve(import.meta.dirname, '../../..'),
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: testDb.location.dataDir,
      DATABASE_URL: testDb.location.databaseUrl ?? '',
      ADMIN_EMAIL: ADMIN.email,
      ADMIN_PASSWORD: ADMIN.password,
      APP_SECRET: 'crash-test-secret-crash-test-secret-0123',
      LOG_LEVEL: 'warn',
      // Short, since these studios get killed: the next one waits for it to run out (leasesExpired).
      INSTANCE_LEASE_S: '3',
      ...opts.env,
    },
    stdio: ['ignore', opts.onStdout ? 'pipe' : 'inherit', 'pipe'],
  });
  if (opts.onStdout) child.stdout!.on('data', (chunk: Buffer) => opts.onStdout!(chunk.toString()));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    process.stderr.write(chunk);
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const base = `http://127.0.0.1:${port}`;
  // A busy machine can take a while to open a database in a new process; say so if it never answers.
  const until = Date.now() + 90_000;
  while (!(await fetch(`${base}/healthz`).then((r) => r.ok, () => false))) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const code = await exit;
      return { exited: { code, stderr }, studio: null };
    }
    if (Date.now() > until) {
      child.kill('SIGKILL');
      throw new Error(`the studio process (${entry}) did not answer /healthz in 90 s`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    exited: null,
    studio: {
      base,
      child,
      /** Resolves with the exit code once the process has ended. */
      exit,
      async kill() {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGKILL');
        await exit;
      },
    },
  };
}

/**
 * Resolves once no studio holds a live lease on the database (PostgreSQL): after a kill -9 the next
 * studio may start only then, as it would for an operator. The embedded database has its folder lock instead.
 */
export async function leasesExpired(testDb: TestDatabase, timeoutMs = 120_000) {
  if (!testDb.location.databaseUrl) return;
  const { default: postgres } = await import('postgres');
  const sql = postgres(testDb.location.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    for (const until = Date.now() + timeoutMs; (await sql`select count(*)::int as n from instances where expires_at > now()`)[0].n > 0; ) {
      if (Date.now() > until) throw new Error('a studio lease never expired');
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await sql.end();
  }
}

/** A studio in a process of its own (kill -9 tests), answering /healthz before this resolves. */
export async function spawnStudio(testDb: TestDatabase, entryOrOptions: string | StudioProcessOptions = {}) {
  const opts = typeof entryOrOptions === 'string' ? { entry: entryOrOptions } : entryOrOptions;
  const started = await startStudioProcess(testDb, opts);
  if (started.exited) throw new Error(`the studio process exited with ${started.exited.code} before answering /healthz: ${started.exited.stderr.slice(-2000)}`);
  return started.studio;
}

/** A concrete path for a route pattern: every parameter filled with a well-formed value. */
export function concretePath(pattern: string, values: Record<string, string> = {}): string {
  return pattern
    .replace(/:(\w+)/g, (_, name: string) => values[name] ?? (name === 'stage' ? 'rewrite' : name === 'version' ? '1' : name === 'index' ? '0' : crypto.randomUUID()))
    .replace(/\*$/, 'index.html');
}
