import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startFakeLlm, type FakeLlmServer } from '@ai-story/fake-llm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { testConnection } from './connection-test.ts';

const KEY = 'sk-conn-test-9b8c7d6e5f4a3b2c';
let fake: FakeLlmServer;

beforeAll(async () => {
  fake = await startFakeLlm();
});
afterAll(() => fake.close());

const provider = (model_name: string, overrides: { api_url?: string; timeout_s?: number } = {}) => ({
  api_url: fake.url,
  api_key: KEY,
  model_name,
  timeout_s: 5,
  ...overrides,
});

describe('testConnection', () => {
  test('a working provider: ok, with the latency to the first token', async () => {
    const r = await testConnection(provider('fake-model?ttft=50&tps=1000'));
    expect(r.ok).toBe(true);
    expect(r.latency_ms).toBeGreaterThanOrEqual(45);
    expect(r.message).toMatch(/^Connected: model "fake-model\?ttft=50&tps=1000" started answering in \d+ ms\.$/);
    expect(r).toMatchObject({ code: 'connected', params: { model: 'fake-model?ttft=50&tps=1000', ms: r.latency_ms } });
  });

  test('it stops at the first token instead of waiting for the whole answer', async () => {
    const started = Date.now();
    const r = await testConnection(provider('fake-model?ttft=0&tps=2&tokens=100'));
    expect(r.ok).toBe(true);
    // The whole answer takes 50 s: a bound this wide tells the two apart on any machine.
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test.each([
    ['a wrong key', 'fake-model?quirk=bad_key', /API key was rejected \(HTTP 401\)/, { code: 'key_rejected' }],
    ['an unknown model', 'fake-model?quirk=model_not_found', /does not offer the model "fake-model\?quirk=model_not_found"/, { code: 'model_not_found', params: { model: 'fake-model?quirk=model_not_found' } }],
    ['a web page instead of an API', 'fake-model?quirk=not_openai', /not like an OpenAI-compatible API \(it sent a web page\).*\/v1/, { code: 'not_openai', params: { what: 'html' } }],
    ['a rate limit', 'fake-model?quirk=http_429&retry_after=7', /rate limiting it \(HTTP 429\); retry in 7 s/, { code: 'rate_limited', params: { seconds: 7 } }],
    ['a server error', 'fake-model?quirk=http_503', /server error \(HTTP 503\)/, { code: 'server_error', params: { status: 503 } }],
  ])('%s is explained in words and as a code with parameters', async (_what, model, message, coded) => {
    const r = await testConnection(provider(model));
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(message);
    expect(r).toMatchObject(coded);
    expect(r.message).not.toContain(KEY);
  });

  test('a wrong path (404 on the endpoint) points at the API URL', async () => {
    const r = await testConnection(provider('fake-model', { api_url: fake.url.replace(/\/v1$/, '/api') }));
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/Nothing answers at 127\.0\.0\.1:\d+'s chat completions path \(HTTP 404\)\. Check the API URL.*\/v1/);
  });

  test('a port where nothing listens: connection refused', async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise((r) => s.close(r));
    const r = await testConnection(provider('fake-model', { api_url: `http://127.0.0.1:${port}/v1` }));
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/Nothing is listening at 127\.0\.0\.1:\d+ \(connection refused\)/);
    expect(r).toMatchObject({ code: 'connection_refused', params: { host: `127.0.0.1:${port}` } });
  });

  test('a host that does not exist: the name could not be found', async () => {
    // `.invalid` never resolves (RFC 2606); offline resolvers may answer EAI_AGAIN instead of ENOTFOUND.
    const r = await testConnection(provider('fake-model', { api_url: 'http://no-such-host.invalid/v1' }));
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/The host no-such-host\.invalid could not be found \(DNS\)/);
  });

  test('a server that never answers: timeout after timeout_s', async () => {
    const started = Date.now();
    const r = await testConnection(provider('fake-model?quirk=stall&after=0', { timeout_s: 1 }));
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/No answer from 127\.0\.0\.1:\d+ within 1 s/);
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
