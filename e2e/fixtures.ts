// Fixtures for the end-to-end specs: every Playwright worker gets a studio of its own — the real
// server as `npm start` runs it (built: apps/server/dist/main.js, which e2e/build-server.ts makes
// before the specs run) on a free port, with a fresh temporary DATA_DIR (embedded database) — serving
// the built web app. Specs import { test, expect } from here.
//
//   test('…', async ({ page, studio }) => { await page.goto('/'); … });   // baseURL = the studio
//
// The worker's studio starts with an admin account (ADMIN below) and is shared by that worker's
// tests; a test that needs an untouched studio (first-admin setup, say) asks for `freshStudio`.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  test as base,
  expect,
  request as playwrightRequest,
  type Browser,
  type BrowserContext,
  type BrowserContextOptions,
  type Page,
} from '@playwright/test';

export { expect };

const ROOT = path.resolve(import.meta.dirname, '..');
const SERVER_ENTRY = path.join(ROOT, 'apps/server/dist/main.js');
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;

export interface Credentials {
  email: string;
  password: string;
  name?: string;
}

/** The admin every worker's studio is created with (ADMIN_EMAIL / ADMIN_PASSWORD). */
export const ADMIN: Required<Credentials> = { email: 'admin@example.com', name: 'Admin', password: 'e2e-admin-password' };

export interface Studio {
  baseURL: string;
  port: number;
  dataDir: string;
  /** The admin created at first start, or null for a studio started without one. */
  admin: Required<Credentials> | null;
  /** What the server printed so far (the tail is attached to a failed test). */
  output(): string;
  stop(): Promise<void>;
}

export interface StudioOptions {
  /** Create ADMIN at first start (default true); false leaves the first-admin setup to the test. */
  withAdmin?: boolean;
  /** Extra environment for the server (e.g. OPENAI_API_URL, DATABASE_URL). */
  env?: Record<string, string>;
  /** Keep DATA_DIR after stop (also: E2E_KEEP_DATA=1). */
  keepData?: boolean;
  /** Another server entry, TypeScript run through tsx, relative to the repository (e.g. a studio with a test-only stage). */
  entry?: string;
}

const running = new Set<ChildProcess>();
// A worker that dies abruptly must not leave servers behind holding ports and data folders.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function webDist(): string {
  return path.resolve(process.env.WEB_DIST ?? path.join(ROOT, 'apps/web/dist'));
}

/**
 * Starts a studio as a child process and resolves once GET /healthz answers 200.
 * Rejects with the server's own output when it exits early or is not ready within 60 s.
 */
export async function startStudio(options: StudioOptions = {}): Promise<Studio> {
  const dist = webDist();
  if (!existsSync(path.join(dist, 'index.html'))) {
    throw new Error(
      `The web app is not built: ${path.relative(ROOT, path.join(dist, 'index.html'))} is missing.\n` +
        `Build it first with \`npm run build -w @ai-story/web\` (\`npm test\` does this before the e2e step).`,
    );
  }
  const withAdmin = options.withAdmin ?? true;
  const keepData = options.keepData ?? process.env.E2E_KEEP_DATA === '1';

  // A port picked free can be taken before the server binds it: try again with another one.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ai-story-e2e-'));
    try {
      return await launch({ port, dataDir, dist, withAdmin, keepData, env: options.env ?? {}, entry: options.entry });
    } catch (err) {
      rmSync(dataDir, { recursive: true, force: true });
      if (attempt < 3 && /EADDRINUSE/.test(String((err as Error).message))) continue;
      throw err;
    }
  }
}

async function launch(o: {
  port: number;
  dataDir: string;
  dist: string;
  withAdmin: boolean;
  keepData: boolean;
  env: Record<string, string>;
  entry?: string;
}): Promise<Studio> {
  const baseURL = `http://127.0.0.1:${o.port}`;
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Hermetic: whatever the developer's shell points the studio at is not what the tests expect.
  for (const key of ['DATABASE_URL', 'REDIS_URL', 'APP_SECRET', 'ADMIN_EMAIL', 'ADMIN_PASSWORD', 'OPENAI_API_KEY', 'OPENAI_API_URL', 'OPENAI_MODEL']) {
    delete env[key];
  }
  Object.assign(env, {
    PORT: String(o.port),
    HOST: '127.0.0.1',
    DATA_DIR: o.dataDir,
    WEB_DIST: o.dist,
    LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'warn',
    // Every spec signs in from 127.0.0.1: the per-IP login limit meant for attackers would throttle
    // the suite (read by the server once it supports it; ignored before).
    LOGIN_RATE_LIMIT: '1000',
    ...(o.withAdmin && { ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password }),
    ...o.env,
  });

  const child = spawn(process.execPath, o.entry ? ['--import', 'tsx', path.join(ROOT, o.entry)] : ['--enable-source-maps', SERVER_ENTRY], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);

  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-64_000);
    if (process.env.E2E_SERVER_LOGS === '1') process.stderr.write(chunk);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  exited.then(() => running.delete(child));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    if (!o.keepData) rmSync(o.dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  let early: number | string | undefined;
  exited.then((code) => (early = code));
  while (true) {
    if (early !== undefined) {
      await stop();
      throw new Error(`The studio exited (${early}) before it was ready.\n--- server output ---\n${output.trim()}`);
    }
    try {
      const res = await fetch(`${baseURL}/healthz`, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`The studio did not answer GET /healthz within ${READY_TIMEOUT_MS / 1000} s.\n--- server output ---\n${output.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }

  return {
    baseURL,
    port: o.port,
    dataDir: o.dataDir,
    admin: o.withAdmin ? ADMIN : null,
    output: () => output,
    stop,
  };
}

/**
 * Signs a browser context in through the API (cookies land in the context, as after a real login).
 * Specs that test the login form itself use the page instead.
 */
export async function signIn(context: BrowserContext, studio: Studio, user: Credentials = ADMIN): Promise<void> {
  const res = await context.request.post(`${studio.baseURL}/api/v1/auth/login`, {
    data: { email: user.email, password: user.password },
    headers: { origin: studio.baseURL },
  });
  if (res.status() !== 200) throw new Error(`Sign-in as ${user.email} failed: ${res.status()} ${await res.text()}`);
}

/** Creates a user through the admin API and returns their credentials (for multi-user specs). */
export async function createUser(
  studio: Studio,
  user: Partial<Credentials> & { role?: 'user' | 'admin' } = {},
): Promise<Required<Credentials>> {
  if (!studio.admin) throw new Error('createUser needs a studio started with an admin');
  const unique = Math.random().toString(36).slice(2, 8);
  const email = user.email ?? `user-${unique}@example.com`;
  const created = { email, name: user.name ?? email.split('@')[0], password: user.password ?? `password-${unique}-e2e` };
  const api = await playwrightRequest.newContext({ baseURL: studio.baseURL, extraHTTPHeaders: { origin: studio.baseURL } });
  try {
    const login = await api.post('/api/v1/auth/login', { data: { email: studio.admin.email, password: studio.admin.password } });
    if (login.status() !== 200) throw new Error(`admin sign-in failed: ${login.status()} ${await login.text()}`);
    const res = await api.post('/api/v1/users/', { data: { ...created, role: user.role ?? 'user' } });
    if (res.status() !== 201) throw new Error(`creating ${email} failed: ${res.status()} ${await res.text()}`);
  } finally {
    await api.dispose();
  }
  return created;
}

export interface Fixtures {
  /** A second (third, …) user's browser: a new context with its own cookies, closed after the test. */
  newContext: (options?: BrowserContextOptions) => Promise<BrowserContext>;
  /** Shortcut: a page in a new context, optionally signed in as `user`. */
  newPage: (user?: Credentials) => Promise<Page>;
  /** A studio of this test alone, with no admin yet (started only when a test asks for it). */
  freshStudio: Studio;
}

export interface WorkerFixtures {
  /** This worker's studio: port, dataDir, baseURL, admin; shared by the worker's tests. */
  studio: Studio;
}

async function attachServerOutput(studio: Studio, testInfo: import('@playwright/test').TestInfo, name: string) {
  if (testInfo.status !== testInfo.expectedStatus && studio.output().trim()) {
    await testInfo.attach(name, { body: studio.output().slice(-16_000), contentType: 'text/plain' });
  }
}

/**
 * What the browser refused under the studio's Content-Security-Policy (an inline script, a style, an
 * image from elsewhere), as it reports it on the console: any of them fails the test.
 */
function watchCspViolations(target: Page | BrowserContext, seen: string[] = []): string[] {
  target.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy/i.test(msg.text())) seen.push(msg.text());
  });
  return seen;
}

export const test = base.extend<Fixtures, WorkerFixtures>({
  studio: [
    async ({}, use) => {
      const studio = await startStudio();
      await use(studio);
      await studio.stop();
    },
    { scope: 'worker', timeout: READY_TIMEOUT_MS + STOP_TIMEOUT_MS + 10_000 },
  ],

  baseURL: async ({ studio }, use) => {
    await use(studio.baseURL);
  },

  // Attach the server's recent output to any failing test: the browser alone rarely tells why.
  page: async ({ page, studio }, use, testInfo) => {
    const violations = watchCspViolations(page);
    await use(page);
    await attachServerOutput(studio, testInfo, 'server output');
    expect(violations, 'Content-Security-Policy violations in the browser console').toEqual([]);
  },

  newContext: async ({ browser, baseURL }, use) => {
    const contexts: BrowserContext[] = [];
    const violations: string[] = [];
    await use(async (options = {}) => {
      const context = await (browser as Browser).newContext({ baseURL, ...options });
      contexts.push(context);
      watchCspViolations(context, violations);
      return context;
    });
    await Promise.all(contexts.map((c) => c.close()));
    expect(violations, 'Content-Security-Policy violations in the browser console').toEqual([]);
  },

  newPage: async ({ newContext, studio }, use) => {
    await use(async (user) => {
      const context = await newContext();
      if (user) await signIn(context, studio, user);
      return context.newPage();
    });
  },

  freshStudio: [
    async ({}, use, testInfo) => {
      const studio = await startStudio({ withAdmin: false });
      await use(studio);
      await attachServerOutput(studio, testInfo, 'fresh studio output');
      await studio.stop();
    },
    // Its own time budget: starting a server must not eat into the test's.
    { timeout: READY_TIMEOUT_MS + STOP_TIMEOUT_MS + 10_000 },
  ],
});
