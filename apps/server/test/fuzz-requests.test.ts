import fc from 'fast-check';
import type { RouteOptions } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { type Client, createUser, setupAdmin, snapshot, startStudio, TEST_DB, type TestStudio } from './helpers.ts';
import { follow } from './sse-client.ts';
import { arbitraryFor } from './zod-arbitrary.ts';

// Property-based fuzzing of every request body and query schema of the route table (issue 15):
// requests derived from the route's own zod contract, valid-ish and hostile, sent by the project's
// owner (an admin): never a 500, and a rejected request (4xx) leaves the database as it was.
// A failure prints the seed and the shrunk request; FUZZ_SEED=<n> replays it, FUZZ_RUNS widens it.
const SEED = Number(process.env.FUZZ_SEED ?? 20261201);
const RUNS = Number(process.env.FUZZ_RUNS ?? 6);

type Schemas = { body?: z.core.$ZodType; querystring?: z.core.$ZodType; params?: z.core.$ZodType };
interface FuzzedRoute {
  method: string;
  url: string;
  schema: Schemas;
}

/** Every route that takes a body or a query, as the app registered it. */
const routes: FuzzedRoute[] = [];
function collect(route: RouteOptions) {
  const schema = (route.schema ?? {}) as Schemas;
  if (!schema.body && !schema.querystring) return;
  // An event stream never ends by itself; its query (`tokens`, `last_event_id`) is read by runs tests.
  if (/(\/events|-stream)\/?$/.test(route.url!)) return;
  for (const method of [route.method].flat()) if (method !== 'HEAD') routes.push({ method, url: route.url!, schema });
}

describe(`fuzzing every request body and query from the contracts (${TEST_DB}, seed ${SEED})`, () => {
  let studio: TestStudio;
  let owner: Client;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    studio = await startStudio({}, undefined, undefined, { onRoute: collect });
    owner = await setupAdmin(studio);
    const member = await createUser(studio, owner, 'member@example.com');
    ids.user = member.id;
    ids.project = (await owner.post('/api/v1/projects/', { name: 'fuzzed', original_topic: 'an old lighthouse' })).body.id;
    await owner.post(`/api/v1/projects/${ids.project}/members/`, { user_id: member.id, role: 'viewer' });
    ids.shot = (await owner.post(`/api/v1/projects/${ids.project}/storyboards/`, { scene_description: 'a lighthouse', narration_text: '灯塔亮了。', duration_seconds: 3 })).body.id;
    ids.provider = (await owner.get('/api/v1/models/providers/')).body[0].id;
    ids.set = (await owner.post('/api/v1/prompts/sets/', { name: 'fuzz set' })).body.id;
    ids.template = (await owner.get(`/api/v1/prompts/templates/?set_id=${ids.set}`)).body.results[0].id;
    const run = (await owner.post(`/api/v1/projects/${ids.project}/stages/rewrite/runs/`, { input: {} })).body;
    await follow(`${studio.url}/api/v1/runs/${run.id}/events`, { cookie: owner.cookie, timeoutMs: 60_000 });
    ids.run = run.id;
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#336699' } }).png().toBuffer();
    const image = await fetch(`${studio.url}/api/v1/projects/${ids.project}/storyboards/${ids.shot}/images/`, {
      method: 'POST',
      headers: { cookie: owner.cookie, 'content-type': 'image/png', origin: studio.url },
      body: new Uint8Array(png),
    });
    ids.image = (await image.json()).id;
  });
  afterAll(async () => {
    await studio?.close();
  });

  /** A real resource for each path parameter, so the request reaches the route's rules. */
  function pathFor(url: string): string {
    return url.replace(/:(\w+)/g, (_m, name: string, offset: number) => {
      const before = url.slice(0, offset);
      if (name === 'stage') return 'rewrite';
      if (name === 'index') return '0';
      if (name === 'version') return '1';
      if (name === 'run_id') return ids.run;
      if (name === 'shotId' || name === 'shot_id') return ids.shot;
      if (name === 'user_id') return ids.user;
      if (name === 'imageId') return ids.image;
      if (before.endsWith('/projects/')) return ids.project;
      if (before.endsWith('/models/providers/')) return ids.provider;
      if (before.endsWith('/users/')) return ids.user;
      if (before.endsWith('/storyboards/')) return ids.shot;
      if (before.endsWith('/prompts/sets/')) return ids.set;
      if (before.endsWith('/prompts/templates/')) return ids.template;
      return '00000000-0000-4000-8000-000000000000';
    });
  }

  /** Lets runs an accepted request started finish their writes, so the next snapshot is a fair baseline. */
  async function settle() {
    await studio.app.services.runs.shutdown();
    let last = await snapshot(studio.database);
    for (;;) {
      await new Promise((r) => setTimeout(r, 50));
      const now = await snapshot(studio.database);
      if (JSON.stringify(now) === JSON.stringify(last)) return now;
      last = now;
    }
  }

  function queryString(query: unknown): string {
    if (query === undefined) return '';
    if (typeof query !== 'object' || query === null || Array.isArray(query)) return `?q=${encodeURIComponent(JSON.stringify(query))}`;
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined) continue;
      for (const one of [v].flat()) params.append(k, typeof one === 'string' ? one : JSON.stringify(one));
    }
    const s = params.toString();
    return s ? `?${s}` : '';
  }

  it('walks a route table that has the routes it should', () => {
    expect(routes.length).toBeGreaterThan(30);
    expect(routes.map((r) => `${r.method} ${r.url}`)).toEqual(expect.arrayContaining(['POST /api/v1/projects', 'GET /api/v1/projects', 'PATCH /api/v1/models/providers/:id']));
  });

  it('derives requests that the contracts mostly accept, so the fuzzing reaches past validation', () => {
    let accepted = 0;
    let total = 0;
    for (const route of routes) {
      for (const part of ['body', 'querystring'] as const) {
        const schema = route.schema[part] as z.ZodType | undefined;
        if (!schema) continue;
        for (const value of fc.sample(arbitraryFor(schema), { numRuns: 10, seed: SEED })) {
          total++;
          if (schema.safeParse(value).success) accepted++;
        }
      }
    }
    expect(accepted / total).toBeGreaterThan(0.8);
  });

  it('answers every generated request without a 500, and a rejected one writes nothing', async () => {
    let baseline = await settle();
    const seen: Record<string, number> = {};
    const timings: string[] = [];
    for (const route of routes) {
      const started = performance.now();
      const request = fc.record({
        body: route.schema.body ? fc.oneof(arbitraryFor(route.schema.body), arbitraryFor(route.schema.body, { hostile: true })) : fc.constant(undefined),
        query: route.schema.querystring ? fc.oneof(arbitraryFor(route.schema.querystring), arbitraryFor(route.schema.querystring, { hostile: true })) : fc.constant(undefined),
      });
      await fc.assert(
        fc.asyncProperty(request, async ({ body, query }) => {
          const url = pathFor(route.url) + queryString(query);
          const res = await owner.request(route.method, url, route.method === 'GET' || route.method === 'DELETE' ? undefined : (body ?? {}));
          seen[res.status] = (seen[res.status] ?? 0) + 1;
          expect(res.status, `${route.method} ${url} → ${JSON.stringify(res.body)?.slice(0, 300)}`).toBeLessThan(500);
          if (res.status >= 400) {
            expect(await snapshot(studio.database), `${route.method} ${url} answered ${res.status} but wrote`).toEqual(baseline);
          } else {
            baseline = await settle();
          }
          // The owner stays signed in whatever the request did (a logout, a password change).
          if ((await owner.get('/api/v1/auth/me')).status === 401) {
            const again = await owner.post('/api/v1/auth/login', { email: 'admin@example.com', password: 'correct horse battery' });
            expect(again.status).toBe(200);
            baseline = await settle();
          }
        }),
        { seed: SEED, numRuns: RUNS, endOnFailure: true },
      );
      timings.push(`${Math.round(performance.now() - started)} ms ${route.method} ${route.url}`);
    }
    console.log(`fuzzed ${routes.length} routes × ${RUNS} requests (seed ${SEED}); answers ${JSON.stringify(seen)}\n${timings.join('\n')}`);
    // Both kinds of answers were reached: the fuzzing got past validation and was refused by it.
    expect(Object.keys(seen).some((s) => s.startsWith('2'))).toBe(true);
    expect(seen[400]).toBeGreaterThan(0);
  }, Math.max(300_000, RUNS * 50_000));
});
