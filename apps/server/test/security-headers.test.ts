import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Client, setupAdmin, startStudio, TEST_DB, type TestStudio } from './helpers.ts';

/** The CSP's directives by name: `{ 'script-src': ["'self'"], … }`. */
function directives(header: string | null): Record<string, string[]> {
  expect(header, 'a Content-Security-Policy header').toBeTruthy();
  return Object.fromEntries(header!.split(';').map((d) => d.trim().split(/\s+/)).filter((d) => d[0]).map(([name, ...values]) => [name, values]));
}

function expectBrowserGuards(headers: Headers) {
  const csp = directives(headers.get('content-security-policy'));
  expect(csp['script-src']).toEqual(["'self'"]); // no inline script, no eval, no other origin
  expect(csp['default-src']).toEqual(["'self'"]);
  expect(csp['frame-ancestors']).toEqual(["'none'"]);
  expect(csp['object-src']).toEqual(["'none'"]);
  expect(headers.get('x-content-type-options')).toBe('nosniff');
  expect(headers.get('x-frame-options')).toBe('DENY');
  expect(headers.get('referrer-policy')).toBe('no-referrer');
}

describe(`security headers (${TEST_DB})`, () => {
  let studio: TestStudio;
  let admin: Client;
  let projectId: string;

  beforeAll(async () => {
    studio = await startStudio();
    admin = await setupAdmin(studio);
    projectId = (await admin.post('/api/v1/projects/', { name: 'headers' })).body.id;
  });
  afterAll(async () => {
    await studio?.close();
  });

  it.each([
    ['a JSON answer', () => `/api/v1/projects/${projectId}/`, 200],
    ['a JSON list', () => '/api/v1/projects/', 200],
    ['a JSON error', () => '/api/v1/projects/00000000-0000-4000-8000-000000000000/', 404],
    ['an unknown API path', () => '/api/v1/nothing-here', 404],
  ])('%s carries the browser guards and is never cached', async (_what, url, status) => {
    const res = await admin.get(url());
    expect(res.status).toBe(status);
    expectBrowserGuards(res.headers);
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it("tells the studio's own time over an answer (Server-Timing), within the time the client saw", async () => {
    const t0 = performance.now();
    const res = await admin.get('/api/v1/projects/');
    const seen = performance.now() - t0;
    const timing = /^app;dur=(\d+\.\d)$/.exec(res.headers.get('server-timing') ?? '');
    expect(timing, `Server-Timing: ${res.headers.get('server-timing')}`).not.toBeNull();
    expect(Number(timing![1])).toBeLessThanOrEqual(seen);
  });

  it('guards an anonymous answer too', async () => {
    const res = await fetch(`${studio.url}/api/v1/auth/me`);
    expect(res.status).toBe(401);
    expectBrowserGuards(res.headers);
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('serves the API documentation page under the same policy', async () => {
    const res = await fetch(`${studio.url}/docs/`, { redirect: 'follow' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expectBrowserGuards(res.headers);
    // The page's scripts are files of its own origin, so the policy lets it run.
    const html = await res.text();
    expect(html).toMatch(/<script src="[^"]+swagger-ui-bundle\.js"/);
    expect(html).not.toMatch(/<script>(?!\s*<\/script>)/);
  });

  it('leaves an event stream its own no-cache, and media its private immutable caching', async () => {
    const controller = new AbortController();
    const stream = await fetch(`${studio.url}/api/v1/projects/${projectId}/events`, { headers: { cookie: admin.cookie }, signal: controller.signal });
    expect(stream.headers.get('content-type')).toMatch(/text\/event-stream/);
    expect(stream.headers.get('cache-control')).toBe('no-cache, no-transform');
    controller.abort();

    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#336699' } }).png().toBuffer();
    const shot = (await admin.post(`/api/v1/projects/${projectId}/storyboards/`, { scene_description: 'a lighthouse', narration_text: 'night', duration_seconds: 3 })).body;
    const uploaded = await fetch(`${studio.url}/api/v1/projects/${projectId}/storyboards/${shot.id}/images/`, {
      method: 'POST',
      headers: { cookie: admin.cookie, 'content-type': 'image/png', origin: studio.url },
      body: new Uint8Array(png),
    });
    expect(uploaded.status).toBe(201);
    const item = await uploaded.json();
    const media = await fetch(`${studio.url}${item.url}`, { headers: { cookie: admin.cookie } });
    expect(media.status).toBe(200);
    expect(media.headers.get('cache-control')).toBe('private, max-age=31536000, immutable');
    expect(media.headers.get('x-content-type-options')).toBe('nosniff');
  });
});
