import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { synthesizeEspeak } from '../offline/espeak.ts';
import { MediaProviderError } from './errors.ts';
import { ttsAdapterFor, type TtsProviderConfig } from './tts-adapter.ts';

// A minimal OpenAI-shape speech server on 127.0.0.1 that speaks with espeak-ng; the input text
// picks the behaviour under test.
const KEY = 'sk-test-123';
let server: Server;
let apiUrl: string;
const received: { path: string; auth?: string; body?: Record<string, unknown> }[] = [];

async function handle(req: IncomingMessage, res: ServerResponse) {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>) : undefined;
  received.push({ path: req.url ?? '', auth: req.headers.authorization, body });
  const json = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(payload));
  };
  if (req.headers.authorization !== `Bearer ${KEY}`) return json(401, { error: { message: 'Incorrect API key provided', code: 'invalid_api_key' } });
  if (req.method === 'GET' && req.url === '/v1/models') return json(200, { object: 'list', data: [{ id: 'tts-1' }] });
  if (req.method !== 'POST' || req.url !== '/v1/audio/speech') return json(404, { error: { message: 'not found' } });
  const input = String(body?.input);
  if (input === 'busy') return json(429, { error: { message: 'Rate limit reached' } }, { 'retry-after': '3' });
  if (input === 'forbidden words') return json(400, { error: { message: 'Your request was rejected by our safety system', code: 'content_policy_violation' } });
  if (input === 'crash') return json(500, { error: { message: 'internal error' } });
  if (input === 'json instead') return json(200, { error: 'model is loading' });
  if (input === 'slow') return void setTimeout(() => res.end(), 5000).unref();
  const wav = await synthesizeEspeak({ text: input, speed: Number(body?.speed) });
  res.writeHead(200, { 'content-type': 'audio/wav' });
  res.end(wav);
}

beforeAll(async () => {
  server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const provider = (over: Partial<TtsProviderConfig> = {}): TtsProviderConfig => ({ api_format: 'openai_speech', api_url: apiUrl, api_key: KEY, model_name: 'tts-1', timeout_s: 10, ...over });
const adapter = ttsAdapterFor('openai_speech');

async function failure(p: Promise<unknown>): Promise<MediaProviderError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(MediaProviderError);
  return e as MediaProviderError;
}

describe('OpenAI-shape speech adapter (real HTTP)', () => {
  test('posts the OpenAI body and returns the WAV bytes', async () => {
    const result = await adapter.synthesize(provider(), { text: '你好。', voice: 'alloy', speed: 1.25, format: 'wav' });
    expect(result.mime).toBe('audio/wav');
    expect(result.simulated).toBe(false);
    expect(result.audio.subarray(0, 4).toString()).toBe('RIFF');
    expect(received.at(-1)).toEqual({ path: '/v1/audio/speech', auth: `Bearer ${KEY}`, body: { model: 'tts-1', input: '你好。', voice: 'alloy', speed: 1.25, response_format: 'wav' } });
  });

  test.each([
    ['busy', 'rate_limited', true, 3000],
    ['forbidden words', 'moderation', false, undefined],
    ['crash', 'upstream', true, undefined],
    ['json instead', 'bad_response', false, undefined],
  ])('"%s" fails as %s (retryable %s)', async (text, code, retryable, after) => {
    const e = await failure(adapter.synthesize(provider(), { text }));
    expect(e.code).toBe(code);
    expect(e.retryable).toBe(retryable);
    expect(e.retryAfterMs).toBe(after);
  });

  test('a wrong key fails as auth with the vendor message', async () => {
    const e = await failure(adapter.synthesize(provider({ api_key: 'sk-wrong' }), { text: '你好' }));
    expect(e).toMatchObject({ code: 'auth', retryable: false, status: 401, vendorMessage: 'Incorrect API key provided' });
  });

  test('a slow provider times out; a cancel is a cancel', async () => {
    expect((await failure(adapter.synthesize(provider({ timeout_s: 0.3 }), { text: 'slow' }))).code).toBe('timeout');
    const controller = new AbortController();
    const pending = adapter.synthesize(provider(), { text: 'slow', signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    expect((await failure(pending)).code).toBe('cancelled');
  });

  test('nothing listening is an upstream error, retryable', async () => {
    const e = await failure(adapter.synthesize(provider({ api_url: 'http://127.0.0.1:9/v1' }), { text: '你好' }));
    expect(e).toMatchObject({ code: 'upstream', retryable: true });
  });

  test('the connection test lists models (no synthesis) and words a bad key', async () => {
    const before = received.filter((r) => r.path === '/v1/audio/speech').length;
    const ok = await adapter.testConnection(provider());
    expect(ok.ok).toBe(true);
    expect(received.at(-1)?.path).toBe('/v1/models');
    const bad = await adapter.testConnection(provider({ api_key: 'sk-wrong' }));
    expect(bad).toMatchObject({ ok: false });
    expect(bad.message).toMatch(/key was rejected/);
    expect(received.filter((r) => r.path === '/v1/audio/speech').length).toBe(before);
  });
});
