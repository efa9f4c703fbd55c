import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, concretePath, type RouteEntry, setupAdmin, startStudio, type TestStudio } from './helpers.ts';

/** Spellings of the same path that route to the same handler: `/%61pi/…`, and a percent-encoded letter in the last word. */
function encodedVariants(path: string): string[] {
  const variants = [path.replace(/^\/api\//, '/%61pi/')];
  const word = [...path.matchAll(/\/([a-z][a-z-]*)(?=\/|$|\.)/g)].at(-1);
  if (word && word.index !== undefined) {
    const at = word.index + 1; // the word's first letter
    variants.push(path.slice(0, at) + '%' + path.charCodeAt(at).toString(16) + path.slice(at + 1));
  }
  return variants.filter((v) => v !== path);
}

/** The routes anyone may call; everything else needs a signed-in user (issue 15, finding 4). */
const PUBLIC = new Set(['GET /healthz', 'GET /api/v1/auth/setup', 'POST /api/v1/auth/setup', 'POST /api/v1/auth/login', 'POST /api/v1/auth/register', 'POST /api/v1/auth/logout']);
const isDocsOrWebApp = (r: RouteEntry) => r.url === '/docs' || r.url.startsWith('/docs/') || r.url === '/*' || r.url === '/';

describe(`the guard decides on the routed path, default deny (${process.env.TEST_DB ?? 'pglite'})`, () => {
  let studio: TestStudio;
  let admin: Client;

  beforeAll(async () => {
    // With METRICS_TOKEN, so that GET /metrics is in the route table too (closed without credentials).
    studio = await startStudio({ metricsToken: 'route-guard-metrics-token-0123' });
    admin = await setupAdmin(studio);
  });
  afterAll(() => studio.close());

  const api = () => studio.routes().filter((r) => r.url.startsWith('/api/'));

  it('marks public only health, setup, login, registration, logout, the API docs and the web app', () => {
    expect(api().length).toBeGreaterThan(60);
    const open = studio.routes().filter((r) => r.public && !isDocsOrWebApp(r)).map((r) => `${r.method} ${r.url}`);
    expect(new Set(open.filter((r) => !r.startsWith('HEAD ')))).toEqual(PUBLIC);
  });

  it('has GET /metrics closed to the anonymous like the API', () => {
    expect(studio.routes().find((r) => r.method === 'GET' && r.url === '/metrics')).toEqual({ method: 'GET', url: '/metrics', public: false });
  });

  it('answers 401 without credentials on every other route, however its path is spelt', async () => {
    const failures: string[] = [];
    for (const route of studio.routes().filter((r) => !r.public)) {
      const path = concretePath(route.url);
      for (const url of [path, ...encodedVariants(path)]) {
        const res = await fetch(studio.url + url, {
          method: route.method,
          redirect: 'manual',
          ...(!['GET', 'HEAD', 'DELETE'].includes(route.method) && { headers: { 'content-type': 'application/json' }, body: '{}' }),
        });
        await res.body?.cancel();
        if (res.status !== 401) failures.push(`${route.method} ${url} → ${res.status}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('reads nothing anonymously through an encoded path (the model routing was readable)', async () => {
    const res = await new Client(studio.url).get('/%61pi/v1/models/routing');
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('unauthenticated');
  });

  it('refuses a cross-site logout or write through an encoded path (CSRF is checked on the route, not the text)', async () => {
    const before = (await admin.get('/api/v1/projects/')).body.count;
    const logout = await admin.post('/%61pi/v1/auth/logout', {}, { 'sec-fetch-site': 'cross-site' });
    expect(logout.status).toBe(403);
    const write = await admin.post('/%61pi/v1/projects/', { name: 'evil', original_topic: 't' }, { origin: 'https://evil.example' });
    expect(write.status).toBe(403);
    expect((await admin.get('/api/v1/auth/me')).status).toBe(200); // still signed in
    expect((await admin.get('/api/v1/projects/')).body.count).toBe(before);
  });

  it("serves the web app's files to anyone, SPA routes included, and the API stays closed", async () => {
    const web = mkdtempSync(path.join(os.tmpdir(), 'ai-story-web-'));
    mkdirSync(path.join(web, 'assets'));
    writeFileSync(path.join(web, 'index.html'), '<!doctype html><title>AI Story</title>');
    writeFileSync(path.join(web, 'assets', 'app.js'), 'console.log(1)');
    const withWeb = await startStudio({ webDist: web });
    try {
      const anon = new Client(withWeb.url);
      expect((await anon.get('/')).body).toContain('AI Story');
      expect((await anon.get('/assets/app.js')).status).toBe(200);
      expect((await anon.get('/projects/some-id')).body).toContain('AI Story'); // a client-side route
      expect((await anon.get('/assets/missing.js')).status).toBe(404);
      expect((await anon.get('/%61pi/v1/projects/')).status).toBe(401);
      expect(withWeb.routes().filter((r) => r.url === '/*').every((r) => r.public)).toBe(true);
    } finally {
      await withWeb.close();
      rmSync(web, { recursive: true, force: true });
    }
  });

  it('answers an unknown path with 404, signed in or not, without revealing more', async () => {
    expect((await new Client(studio.url).get('/api/v1/no-such-thing')).status).toBe(404);
    expect((await admin.get('/api/v1/no-such-thing')).status).toBe(404);
  });
});
