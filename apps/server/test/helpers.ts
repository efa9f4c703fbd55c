import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp, type BuildOptions } from '../src/app.ts';
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
 * A fresh database per test file. PGlite costs seconds to initialise, so one migrated folder is made
 * once per migration set and copied (DESIGN §2); PostgreSQL gets a database of its own on the server.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ai-story-test-'));
  if (TEST_DB === 'postgres') {
    const { default: postgres } = await import('postgres');
    const name = `ai_story_test_${randomUUID().replaceAll('-', '')}`;
    const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    await admin.end();
    const url = new URL(SERVER_URL);
    url.pathname = `/${name}`;
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
  cpSync(await pgliteTemplate(), dataDir, { recursive: true });
  return {
    location: { dataDir },
    open: () => openDatabase({ dataDir }),
    destroy: async () => rmSync(dataDir, { recursive: true, force: true }),
  };
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

export interface TestStudio {
  app: FastifyInstance;
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
  build: Pick<BuildOptions, 'stages'> = {},
): Promise<TestStudio> {
  const testDb = existing ?? (await createTestDatabase());
  const database = await testDb.open();
  const config = loadConfig(
    { LOG_LEVEL: logStream ? 'info' : 'silent' },
    { dataDir: testDb.location.dataDir, appSecret: 'test-secret-test-secret-test-secret-0123', loginRateLimit: 1000, ...overrides },
  );
  const app = await buildApp(config, { database, logStream, ...build });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    app,
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
    .map((t) => getTableConfig(t as InstanceType<typeof PgTable>).name);
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

/**
 * A studio in a process of its own (kill -9 tests), answering /healthz before this resolves. `entry`
 * is the script it runs, relative to the repository root (main.ts by default).
 */
export async function spawnStudio(testDb: TestDatabase, entry = 'apps/server/src/main.ts'): Promise<{ base: string; child: ChildProcess; kill(): Promise<void> }> {
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
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  // A busy machine can take a while to open a database in a new process; say so if it never answers.
  const until = Date.now() + 90_000;
  while (!(await fetch(`${base}/healthz`).then((r) => r.ok, () => false))) {
    if (child.exitCode !== null || Date.now() > until) {
      child.kill('SIGKILL');
      throw new Error(`the studio process (${entry}) did not answer /healthz (exit ${child.exitCode ?? 'none'})`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    base,
    child,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/** A concrete path for a route pattern: every parameter filled with a well-formed value. */
export function concretePath(pattern: string, values: Record<string, string> = {}): string {
  return pattern
    .replace(/:(\w+)/g, (_, name: string) => values[name] ?? (name === 'stage' ? 'rewrite' : name === 'version' ? '1' : name === 'index' ? '0' : crypto.randomUUID()))
    .replace(/\*$/, 'index.html');
}
