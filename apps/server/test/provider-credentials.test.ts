import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Client, setupAdmin, snapshot, startStudio, TEST_DB, type TestStudio } from './helpers.ts';

const KEY = 'sk-live-Q7vN3xK8mP2rT9wL4hBz';
const SECRET = 'kling-secret-5b4a3c2d1e0f9a8b';

/**
 * A host that records what it is sent and refuses with an error body quoting the key the way careless
 * or hostile vendors do: cut, split, url-encoded, inside base64.
 */
async function startEchoingHost() {
  const seen: IncomingHttpHeaders[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(req.headers);
    const key = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    const message = [
      `Key ${key.slice(0, 12)}**** is not allowed for this model.`,
      `Expected one of ...${key.slice(-9)}.`,
      `Split: "${key.slice(0, 10)}" "${key.slice(10)}".`,
      `Seen as ${encodeURIComponent(key + '/')} and ${Buffer.from(`u:${key}`).toString('base64')}.`,
    ].join(' ');
    res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message, type: 'invalid_request_error', code: 'key_not_allowed' } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, seen, close: () => new Promise((r) => server.close(r)) };
}

/** No six characters in a row of the key, nor of its base64 form, in the text. */
function expectNoFragment(text: string, key: string) {
  const b64 = Buffer.from(`u:${key}`).toString('base64');
  for (const s of [key, encodeURIComponent(key), b64.slice(4, -4)]) {
    for (let i = 0; i + 6 <= s.length; i++) expect(text, `"${s.slice(i, i + 6)}" of a key shape came back`).not.toContain(s.slice(i, i + 6));
  }
}

describe(`a stored provider key goes only where it was entered for (${TEST_DB})`, () => {
  let studio: TestStudio;
  let admin: Client;
  let host: Awaited<ReturnType<typeof startEchoingHost>>;

  beforeAll(async () => {
    host = await startEchoingHost();
    studio = await startStudio();
    admin = await setupAdmin(studio);
  });
  afterAll(async () => {
    await studio?.close();
    await host?.close();
  });

  it.each([
    ['an LLM provider', { provider_type: 'llm', model_name: 'm' }, 'api_key', {}],
    ['an image provider', { provider_type: 'text2image', api_format: 'openai', model_name: 'm' }, 'api_key', {}],
    ['a video provider with a secret, given only its key', { provider_type: 'image2video', api_format: 'kling', model_name: 'm', api_secret: SECRET }, 'api_secret', { api_key: KEY }],
  ])('refuses to move %s to another URL without its credentials again, naming the field', async (_what, fields, missing, given) => {
    const created = await admin.post('/api/v1/models/providers/', { name: 'stored', api_url: 'http://127.0.0.1:9/v1', api_key: KEY, ...fields });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const before = await snapshot(studio.database);
    const moved = await admin.patch(`/api/v1/models/providers/${created.body.id}/`, { api_url: host.url, ...given });
    expect(moved.status).toBe(400);
    expect(Object.keys(moved.body.error.details.fields)).toContain(missing);
    expect(await snapshot(studio.database)).toEqual(before);

    // The provider still points where it did, so a test sends the key nowhere new.
    await admin.post(`/api/v1/models/providers/${created.body.id}/test/`);
    expect(host.seen).toHaveLength(0);
    // A PATCH that leaves the URL as it is keeps the key, as before.
    const renamed = await admin.patch(`/api/v1/models/providers/${created.body.id}/`, { name: 'renamed', api_url: 'http://127.0.0.1:9/v1' });
    expect(renamed.status).toBe(200);
    expect(renamed.body.api_key_hint).toBe(`sk-…${KEY.slice(-4)}`);
  });

  it.each([
    ['an LLM provider', { provider_type: 'llm', model_name: 'm' }],
    ['an image provider', { provider_type: 'text2image', api_format: 'openai', model_name: 'm' }],
  ])('moves %s once the key is given again, and the test answers the vendor refusal without any shape of the key', async (_what, fields) => {
    const created = await admin.post('/api/v1/models/providers/', { name: 'moving', api_url: 'http://127.0.0.1:9/v1', api_key: 'sk-old-0000000000000000', ...fields });
    const moved = await admin.patch(`/api/v1/models/providers/${created.body.id}/`, { api_url: host.url, api_key: KEY });
    expect(moved.status).toBe(200);
    const seenBefore = host.seen.length;
    const test = await admin.post(`/api/v1/models/providers/${created.body.id}/test/`);
    expect(test.status).toBe(200);
    expect(host.seen.length).toBeGreaterThan(seenBefore); // the vendor did quote the key: there was something to hide
    expect(test.body.ok).toBe(false);
    expect(test.body.message.length).toBeLessThanOrEqual(401);
    expectNoFragment(JSON.stringify(test.body), KEY);
    // What is saved as the provider's last test is the same redacted answer.
    expectNoFragment(JSON.stringify((await admin.get(`/api/v1/models/providers/${created.body.id}/`)).body), KEY);
  });
});
