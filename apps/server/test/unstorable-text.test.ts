import { PassThrough } from 'node:stream';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Client, createUser, setupAdmin, snapshot, startStudio, TEST_DB, type TestStudio } from './helpers.ts';

// What must never reach a log line: a password hash, and a provider key as the cipher seals it
// (`v1:<iv>:<tag>:<data>`, base64url: crypto/cipher.ts).
const ARGON2_HASH = /\$argon2/;
const SEALED_KEY = /v1:[\w-]{16}:[\w-]{22}:[\w-]+/;

describe(`text PostgreSQL cannot store, and what a failed query logs (${TEST_DB})`, () => {
  let studio: TestStudio;
  let admin: Client;
  let member: Client & { id: string };
  let projectId: string;
  let providerId: string;
  const logLines: string[] = [];

  beforeAll(async () => {
    const logs = new PassThrough();
    logs.on('data', (chunk) => logLines.push(chunk.toString()));
    studio = await startStudio({}, undefined, logs);
    admin = await setupAdmin(studio);
    member = await createUser(studio, admin, 'member@example.com');
    projectId = (await admin.post('/api/v1/projects/', { name: 'lighthouse', original_topic: 'an old lighthouse' })).body.id;
    providerId = (await admin.post('/api/v1/models/providers/', { name: 'p', api_url: 'http://127.0.0.1:9/v1', api_key: 'sk-test-0123456789abcdef', model_name: 'm' })).body.id;
  });
  afterAll(async () => {
    await studio?.close();
  });

  const NUL = 'a\u0000b';
  const LONE_HIGH = 'a\uD800b';
  const LONE_LOW = '\uDC00';
  // Each of these reached the database on a query that also carried a password hash or a sealed key.
  const hostile: [string, string, () => string, unknown, string][] = [
    ['POST', 'a user with NUL in the name', () => '/api/v1/users/', { email: 'x@example.com', name: NUL, password: 'password-123' }, 'name'],
    ['PATCH', 'a user update with NUL and a new password', () => `/api/v1/users/${member.id}/`, { name: NUL, password: 'password-456' }, 'name'],
    ['POST', 'a provider with NUL in the name and a key', () => '/api/v1/models/providers/', { name: NUL, api_url: 'http://127.0.0.1:9/v1', api_key: 'sk-live-abcdef0123456789', model_name: 'm' }, 'name'],
    ['PATCH', 'a provider update with a lone surrogate and a new key', () => `/api/v1/models/providers/${providerId}/`, { model_name: LONE_HIGH, api_key: 'sk-live-abcdef0123456789' }, 'model_name'],
    ['POST', 'a project with NUL in the topic', () => '/api/v1/projects/', { name: 'p', original_topic: NUL }, 'original_topic'],
    ['PATCH', 'a project rename with a lone low surrogate', () => `/api/v1/projects/${projectId}/`, { name: LONE_LOW }, 'name'],
    ['PUT', 'a stage setting with NUL in a key of a record', () => `/api/v1/projects/${projectId}/model-config/`, { [`rewrite${NUL}`]: { provider_ids: [], strategy: 'random' } }, `rewrite${NUL}`],
    ['GET', 'a project search with NUL', () => '/api/v1/projects/?search=%00', undefined, 'search'],
    ['GET', 'a user search with NUL', () => '/api/v1/users/?search=x%00', undefined, 'search'],
  ];

  it.each(hostile)('%s %s answers 400 naming the field, and changes nothing', async (method, _what, url, body, field) => {
    const before = await snapshot(studio.database);
    const res = await admin.request(method, url(), body);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error.code).toBe('validation_error');
    expect(Object.keys(res.body.error.details.fields)).toContain(field);
    expect(await snapshot(studio.database)).toEqual(before);
  });

  it('checks a body nested as deep as the body limit allows in linear time, even anonymously', async () => {
    const depth = 400_000; // under 1 MiB: the check runs on public routes, before the route's own schema
    const body = `{"email":${'['.repeat(depth)}"a"${']'.repeat(depth)},"password":"x"}`;
    const started = performance.now();
    const res = await fetch(`${studio.url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(res.status).toBe(400);
    expect(performance.now() - started).toBeLessThan(5_000);
    expect((await res.json()).error.code).toBe('validation_error');
  });

  it('logs a failed query without its bound values (no password hash, no sealed key)', async () => {
    const hash = (await studio.database.db.execute(sql`select password_hash from users limit 1`)) as any;
    const passwordHash = (hash.rows ?? hash)[0].password_hash as string;
    const sealed = studio.app.services.cipher.encrypt('sk-live-abcdef0123456789');
    expect(passwordHash).toMatch(ARGON2_HASH);
    expect(sealed).toMatch(SEALED_KEY);
    // A real driver error of each engine: the NUL makes the statement fail with the values bound.
    const err = await studio.database.db.execute(sql`select ${passwordHash}::text, ${sealed}::text, ${'\u0000'}::text`).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    studio.app.log.error({ err }, 'unhandled error');
    // A failing row's detail ("Failing row contains (…)") is a row's values too.
    const rowErr = await studio.database.db.execute(sql`insert into users (email, name, password_hash, role) values (null, 'x', ${passwordHash}, 'user')`).then(
      () => null,
      (e: unknown) => e,
    );
    expect(rowErr).toBeInstanceOf(Error);
    studio.app.log.error({ err: rowErr }, 'unhandled error');

    const logged = logLines.join('');
    expect(logged).toContain('Failed query');
    expect(logged).not.toMatch(ARGON2_HASH);
    expect(logged).not.toMatch(SEALED_KEY);
  });

  it('left no password hash or sealed key in any log line of the hostile requests', () => {
    const logged = logLines.join('');
    expect(logged).toContain('incoming request');
    expect(logged).not.toMatch(ARGON2_HASH);
    expect(logged).not.toMatch(SEALED_KEY);
  });
});
