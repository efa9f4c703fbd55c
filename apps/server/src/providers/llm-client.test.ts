import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFakeLlmHandler, expectedReasoning, expectedText, expectedTokens, startFakeLlm, type FakeLlmServer, type RequestEndInfo } from '@ai-story/fake-llm';
import { jsonrepair } from 'jsonrepair';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LlmError, streamChat as streamChatHere, type LlmDelta, type LlmResult, type RetryInfo, type StreamChatParams } from './llm-client.ts';
import { LlmStreamThread } from './llm-stream-thread.ts';

const KEY = 'sk-test-4f9a1c2e7b3d8e6f0a5c';
const FAST = 'tps=5000&ttft=0';
let fake: FakeLlmServer;
const ended: RequestEndInfo[] = [];


type Params = Omit<StreamChatParams, 'provider' | 'messages'> & { timeout_s?: number; api_url?: string };

/** Runs one streamChat to its end; returns the deltas it handed over and how it ended. */
async function run(model: string, prompt: string, opts: Params = {}) {
  const { timeout_s = 5, api_url = fake.url, onRetry, ...rest } = opts;
  const messages = [{ role: 'user' as const, content: prompt }];
  const deltas: LlmDelta[] = [];
  const retries: RetryInfo[] = [];
  const started = performance.now();
  let result: LlmResult | undefined;
  let error: LlmError | undefined;
  try {
    result = await streamChat(
      {
        provider: { api_url, api_key: KEY, model_name: model, timeout_s },
        messages,
        onRetry: (info) => {
          retries.push(info);
          onRetry?.(info);
        },
        ...rest,
      },
      (delta) => deltas.push(delta),
    );
  } catch (e) {
    if (!(e instanceof LlmError)) throw e;
    error = e;
  }
  const text = deltas.filter((d) => d.kind === 'text').map((d) => d.text).join('');
  const request = { model, messages };
  return { deltas, text, result, error, retries, ms: performance.now() - started, expected: expectedText(request), request };
}

const closedUpstream = (model: string) =>
  new Promise<RequestEndInfo>((resolve, reject) => {
    const deadline = Date.now() + 3000;
    const poll = setInterval(() => {
      const hit = ended.find((e) => e.model === model && e.outcome === 'client_closed');
      if (hit || Date.now() > deadline) {
        clearInterval(poll);
        if (hit) resolve(hit);
        else reject(new Error(`the upstream never saw ${model} closed`));
      }
    }, 5);
  });

// The same contract wherever the stream is read: here, or on the reader's own thread (as runs read them).
const thread = new LlmStreamThread();
afterAll(() => thread.close());
let streamChat: typeof streamChatHere;

describe.each([
  ['here', streamChatHere],
  ['on its own thread', thread.streamChat.bind(thread)],
])('streamChat %s', (where, implementation) => {
  // A fresh upstream each: it counts `fail_times` per request it has seen.
  beforeAll(async () => {
    streamChat = implementation;
    ended.length = 0;
    fake = await startFakeLlm({ onRequestEnd: (info) => ended.push(info) });
  });
  afterAll(() => fake.close());

  describe('a well-formed stream', () => {
    test('yields exactly the upstream text, with usage from the usage chunk and timings', async () => {
      const r = await run(`fake-model?tokens=40&${FAST}`, '普通的故事');
      expect(r.error).toBeUndefined();
      expect(r.text).toBe(r.expected);
      expect(r.deltas.every((d) => d.kind === 'text' && d.text !== '')).toBe(true);
      expect(r.deltas.map((d) => d.text)).toEqual(expectedTokens(r.request));
      expect(r.result).toMatchObject({ finish_reason: 'stop', text: r.expected, reasoning: '', attempts: 1 });
      expect(r.result!.usage).toEqual({ prompt_tokens: expect.any(Number), completion_tokens: 40, estimated: false });
      expect(r.result!.ttft_ms).toBeGreaterThanOrEqual(0);
      expect(r.result!.duration_ms).toBeGreaterThanOrEqual(r.result!.ttft_ms!);
    });

    // Each quirk changes only the bytes on the wire, never the text a user gets.
    test.each([
      ['role_first', 'a role-only first chunk yields no empty delta'],
      ['empty_chunks', 'empty-content chunks are skipped'],
      ['usage_chunk', 'a `choices: []` usage chunk is read safely'],
      ['coalesce', 'several events in one network read all arrive'],
      ['split_event', 'an event split over two reads is reassembled'],
      ['keepalive', 'keep-alive comments are ignored'],
      ['ignore_stream', 'a server that answers one JSON completion instead of a stream still works'],
    ])('%s: %s', async (quirk) => {
      const r = await run(`fake-model?tokens=40&${FAST}&quirk=${quirk}`, `怪癖 ${quirk}`);
      expect(r.error).toBeUndefined();
      expect(r.text).toBe(r.expected);
      expect(r.deltas.every((d) => d.text !== '')).toBe(true);
      expect(r.result).toMatchObject({ finish_reason: 'stop', attempts: 1 });
      expect(r.result!.usage.estimated).toBe(false);
    });

    test('split_utf8: characters cut across network writes, multi-codepoint emoji included, arrive intact', async () => {
      const r = await run(`fake-model?tokens=120&${FAST}&quirk=split_utf8`, '切开的字');
      expect(r.expected).toMatch(/\u200d/u); // a ZWJ emoji sequence
      expect(r.expected).toMatch(/\p{Emoji_Modifier}|\p{Regional_Indicator}|\ufe0f/u);
      expect(r.error).toBeUndefined();
      expect(r.text).toBe(r.expected);
      expect(r.text).not.toContain('\ufffd');
    });

    test('reasoning deltas are kept apart from the answer and come first', async () => {
      const r = await run(`fake-model?tokens=20&${FAST}&quirk=reasoning&reasoning_tokens=8`, '先想一想');
      expect(r.error).toBeUndefined();
      const kinds = r.deltas.map((d) => d.kind);
      expect(kinds.lastIndexOf('reasoning')).toBeLessThan(kinds.indexOf('text'));
      const reasoning = r.deltas.filter((d) => d.kind === 'reasoning').map((d) => d.text).join('');
      expect(reasoning).toBe(expectedReasoning(r.request));
      expect(r.text).toBe(r.expected);
      expect(r.result).toMatchObject({ text: r.expected, reasoning });
    });

    test('without a usage chunk, usage is counted locally and flagged estimated', async () => {
      const r = await run(`fake-model?tokens=30&${FAST}&quirk=no_usage`, '没有用量');
      expect(r.text).toBe(r.expected);
      expect(r.result!.usage.estimated).toBe(true);
      expect(r.result!.usage.prompt_tokens).toBeGreaterThan(3);
      expect(r.result!.usage.completion_tokens).toBeGreaterThan(10);
    });

    test('a JSON answer streams whole; a broken one is repairable to the same value', async () => {
      const prompt = '分镜:小林打开门。门外下着雨。他笑了。';
      const clean = await run(`fake-model?${FAST}`, prompt, { response_format: 'json_object' });
      const cleanExpected = expectedText({ ...clean.request, response_format: { type: 'json_object' } });
      expect(clean.text).toBe(cleanExpected);
      expect(JSON.parse(clean.text).shots).toHaveLength(3);
      const broken = await run(`fake-model?${FAST}&quirk=json_broken`, prompt, { response_format: 'json_object' });
      expect(() => JSON.parse(broken.text)).toThrow();
      expect(JSON.parse(jsonrepair(broken.text))).toEqual(JSON.parse(clean.text));
    });
  });

  describe('faults before the first token are retried', () => {
    test('429 with Retry-After: waits as asked, then succeeds', async () => {
      const r = await run(`fake-model?tokens=10&${FAST}&quirk=http_429&fail_times=1&retry_after=1`, '限流后重试');
      expect(r.error).toBeUndefined();
      expect(r.text).toBe(r.expected);
      expect(r.result!.attempts).toBe(2);
      expect(r.retries).toHaveLength(1);
      expect(r.retries[0].error).toMatchObject({ code: 'rate_limited', status: 429, retryAfterMs: 1000, retryable: true });
      expect(r.retries[0].delay_ms).toBeGreaterThanOrEqual(1000);
      expect(r.ms).toBeGreaterThanOrEqual(1000);
    });

    test('an onRetry that throws ends the stream with its own error', async () => {
      const mine = new Error('no retries for me');
      const error = await streamChat(
        {
          provider: { api_url: fake.url, api_key: KEY, model_name: `fake-model?tokens=10&${FAST}&quirk=http_500&fail_times=1`, timeout_s: 5 },
          messages: [{ role: 'user', content: '重试时放弃' }],
          onRetry: () => {
            throw mine;
          },
        },
        () => {},
      ).catch((e: unknown) => e);
      expect(error).toBe(mine);
    });

    test('a Retry-After too long to wait out is handed up at once, for failover', async () => {
      const r = await run(`fake-model?tokens=10&${FAST}&quirk=http_429&retry_after=120`, '长时间限流');
      expect(r.error).toMatchObject({ code: 'rate_limited', retryable: true, retryAfterMs: 120_000, afterFirstToken: false });
      expect(r.retries).toHaveLength(0);
      expect(r.ms).toBeLessThan(1000);
    });

    test.each(['http_500', 'http_503'])('%s once: retried with backoff, then succeeds', async (quirk) => {
      const r = await run(`fake-model?tokens=10&${FAST}&quirk=${quirk}&fail_times=1`, `服务器错误 ${quirk}`);
      expect(r.error).toBeUndefined();
      expect(r.text).toBe(r.expected);
      expect(r.result!.attempts).toBe(2);
      expect(r.retries[0].error).toMatchObject({ code: 'upstream_5xx', status: Number(quirk.slice(5)) });
      expect(r.retries[0].delay_ms).toBeGreaterThan(0);
    });

    test('a lasting 5xx fails as upstream_5xx after maxRetries + 1 attempts', async () => {
      const before = fake.handler.stats.requests;
      const r = await run('fake-model?quirk=http_503', '一直出错', { maxRetries: 1 });
      expect(r.error).toMatchObject({ code: 'upstream_5xx', status: 503, retryable: true, afterFirstToken: false });
      expect(fake.handler.stats.requests - before).toBe(2);
    });

    test('a cut or an in-stream error before any token is retried too', async () => {
      const cut = await run(`fake-model?tokens=10&${FAST}&quirk=cut_mid_stream&after=0&fail_times=1`, '开头就断');
      expect(cut.error).toBeUndefined();
      expect(cut.text).toBe(cut.expected);
      expect(cut.retries[0].error.code).toBe('network');
      const err = await run(`fake-model?tokens=10&${FAST}&quirk=stream_error&after=0&fail_times=1`, '开头就错');
      expect(err.error).toBeUndefined();
      expect(err.text).toBe(err.expected);
      expect(err.retries[0].error.code).toBe('stream_error');
    });

    test('the stream_options a server refuses is dropped, once', async () => {
      // Azure's older API versions answer 400 to `stream_options`; everything else is the fake upstream.
      const inner = createFakeLlmHandler({ defaults: { tokens: 12, ttft_ms: 0, tps: 5000 } });
      const picky = createServer((req, res) => {
        const parts: Buffer[] = [];
        req.on('data', (b) => parts.push(b)).on('end', () => {
          const body = JSON.parse(Buffer.concat(parts).toString());
          if (body.stream_options) {
            res.writeHead(400, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ error: { message: 'Unrecognized request argument supplied: stream_options', type: 'invalid_request_error', param: null, code: null } }));
          } else inner(req, res, body);
        });
      });
      const url = await listen(picky);
      try {
        const r = await run('fake-model', '挑剔的服务器', { api_url: url });
        expect(r.error).toBeUndefined();
        expect(r.text).toBe(expectedText(r.request, { defaults: { tokens: 12 } }));
        expect(r.result!.usage.estimated).toBe(true);
      } finally {
        await close(picky);
      }
    });
  });

  describe('faults after the first token end the stream', () => {
    test('cut_mid_stream: network error after the first token, text so far intact', async () => {
      const r = await run(`fake-model?tokens=30&${FAST}&quirk=cut_mid_stream&after=4`, '中途断开');
      expect(r.error).toMatchObject({ code: 'network', afterFirstToken: true, retryable: true, upstreamCode: 'ECONNRESET' });
      expect(r.error!.message).toMatch(/cut mid-stream/);
      expect(r.text).toBe(expectedTokens(r.request).slice(0, 4).join(''));
      expect(r.retries).toHaveLength(0);
    });

    test('stream_error: the in-stream error object becomes stream_error', async () => {
      const r = await run(`fake-model?tokens=30&${FAST}&quirk=stream_error&after=3`, '中途报错');
      expect(r.error).toMatchObject({ code: 'stream_error', afterFirstToken: true, upstreamCode: 'server_error' });
      expect(r.error!.message).toMatch(/error inside the stream/);
      expect(r.text).toBe(expectedTokens(r.request).slice(0, 3).join(''));
    });

    test('no_done: a body that ends without [DONE] or finish_reason is truncated, not complete', async () => {
      const r = await run(`fake-model?tokens=20&${FAST}&quirk=no_done`, '没有结尾');
      expect(r.error).toMatchObject({ code: 'truncated', afterFirstToken: true, retryable: true });
      expect(r.text).toBe(r.expected);
      expect(r.result).toBeUndefined();
    });
  });

  describe('timeouts', () => {
    test('stall before the first token: bounded by the first-token deadline', async () => {
      const r = await run(`fake-model?tokens=20&${FAST}&quirk=stall&after=0`, '一直不说话', { timeouts: { first_token_ms: 300 }, maxRetries: 0 });
      expect(r.error).toMatchObject({ code: 'timeout', afterFirstToken: false, retryable: true });
      expect(r.ms).toBeGreaterThanOrEqual(290);
      expect(r.ms).toBeLessThan(2000);
    });

    test('stall after some tokens: bounded by the idle-gap watchdog', async () => {
      const r = await run(`stall-model?tokens=20&${FAST}&quirk=stall&after=3`, '说到一半', { timeouts: { idle_ms: 300 } });
      expect(r.error).toMatchObject({ code: 'timeout', afterFirstToken: true });
      expect(r.error!.message).toMatch(/stalled/);
      expect(r.text).toBe(expectedTokens(r.request).slice(0, 3).join(''));
      expect(r.ms).toBeLessThan(2000);
      await closedUpstream('stall-model');
    });

    // Here only: the fake upstream serves from this thread, so a consumer holding it holds the upstream too.
    // On its own thread the reader never waits for the consumer.
    test.skipIf(where !== 'here')('a slow consumer is not mistaken for a stalled upstream', async () => {
      let text = '';
      await streamChat(
        {
          provider: { api_url: fake.url, api_key: KEY, model_name: 'fake-model?tokens=10&tps=50&ttft=0', timeout_s: 5 },
          messages: [{ role: 'user', content: '慢慢读' }],
          // 25 times the upstream's gap between tokens: only the consumer's hold is longer.
          timeouts: { idle_ms: 500 },
        },
        (delta) => {
          // Holds the first delta longer than the idle limit while the upstream keeps streaming.
          if (!text) for (const until = performance.now() + 1_200; performance.now() < until; );
          text += delta.text;
        },
      );
      expect(text).toBe(expectedText({ model: 'fake-model?tokens=10', messages: [{ role: 'user', content: '慢慢读' }] }));
    });

    test('the provider timeout_s applies when no override is given', async () => {
      const r = await run(`fake-model?quirk=stall&after=0`, '默认超时', { timeout_s: 1, maxRetries: 0 });
      expect(r.error).toMatchObject({ code: 'timeout' });
      expect(r.ms).toBeGreaterThanOrEqual(990);
      expect(r.ms).toBeLessThan(3000);
    });
  });

  describe('errors that retrying cannot fix', () => {
    test('bad_key: auth, not retried, and the key is nowhere in the message', async () => {
      const before = fake.handler.stats.requests;
      const r = await run('fake-model?quirk=bad_key', '错误的钥匙');
      expect(r.error).toMatchObject({ code: 'auth', status: 401, retryable: false, afterFirstToken: false });
      expect(fake.handler.stats.requests - before).toBe(1);
      expect(r.error!.message).not.toContain(KEY);
      expect(r.error!.message).not.toContain(KEY.slice(-4));
    });

    test('model_not_found: not_found that names the model', async () => {
      const r = await run('fake-model?quirk=model_not_found', '没有这个模型');
      expect(r.error).toMatchObject({ code: 'not_found', status: 404, retryable: false, upstreamCode: 'model_not_found' });
      expect(r.error!.message).toMatch(/model/);
    });

    test('a wrong path: not_found that points at the API URL', async () => {
      const r = await run('fake-model', '错误的路径', { api_url: fake.url.replace(/\/v1$/, '') });
      expect(r.error).toMatchObject({ code: 'not_found', status: 404, retryable: false });
      expect(r.error!.message).toMatch(/API URL/);
    });

    test('not_openai: an HTML page is a bad_response', async () => {
      const r = await run('fake-model?quirk=not_openai', '网页');
      expect(r.error).toMatchObject({ code: 'bad_response', retryable: false });
      expect(r.error!.message).toMatch(/HTML/);
    });

    test('a closed port: network error naming the refusal', async () => {
      const r = await run('fake-model', '没人在家', { api_url: `http://127.0.0.1:${await freePort()}/v1`, maxRetries: 0 });
      expect(r.error).toMatchObject({ code: 'network', retryable: true, upstreamCode: 'ECONNREFUSED' });
    });

    test('NUL in the streamed text is dropped, so the run can be saved', async () => {
      const nul = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const chunk = (content: string) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content } }] })}\n\n`;
        res.end(`${chunk('雨\u0000夜')}${chunk('\u0000')}${chunk('归人')}data: [DONE]\n\n`);
      });
      const url = await listen(nul);
      try {
        const r = await run('fake-model', '空字节', { api_url: url });
        expect(r.error).toBeUndefined();
        expect(r.text).toBe('雨夜归人');
        expect(r.result!.text).toBe('雨夜归人');
      } finally {
        await close(nul);
      }
    });

    test('an upstream message that quotes the key is redacted', async () => {
      const leaky = createServer((_req, res) => {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `Bad request for key ${KEY} (also sk-proj-ABCDEF123456)`, type: 'invalid_request_error' } }));
      });
      const url = await listen(leaky);
      try {
        const r = await run('fake-model', '泄露', { api_url: url });
        expect(r.error).toMatchObject({ code: 'bad_response', status: 400 });
        expect(r.error!.message).not.toContain(KEY);
        expect(r.error!.message).not.toContain('ABCDEF123456');
        expect(r.error!.message).toContain('[redacted]');
      } finally {
        await close(leaky);
      }
    });
  });

  describe('the connection', () => {
    test('a stream read to its end leaves its socket to the next request', async () => {
      const inner = createFakeLlmHandler({ defaults: { tokens: 8, ttft_ms: 0, tps: 5000 } });
      const sockets = new Set<unknown>();
      const server = createServer((req, res) => {
        sockets.add(req.socket);
        const parts: Buffer[] = [];
        req.on('data', (b) => parts.push(b)).on('end', () => inner(req, res, JSON.parse(Buffer.concat(parts).toString())));
      });
      const url = await listen(server);
      try {
        for (const prompt of ['第一次', '第二次']) {
          const r = await run('fake-model', prompt, { api_url: url });
          expect(r.error).toBeUndefined();
          expect(r.text).toBe(expectedText(r.request, { defaults: { tokens: 8 } }));
        }
        expect(sockets.size).toBe(1);
      } finally {
        await close(server);
      }
    });

    test('after [DONE], a body the server keeps open is not waited on: the answer returns and the socket is closed', async () => {
      let socketClosed: Promise<unknown> | undefined;
      const server = createServer((req, res) => {
        socketClosed = new Promise((r) => req.socket.once('close', r));
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: '完' }, finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`);
      });
      const url = await listen(server);
      try {
        const r = await run('fake-model', '不关的流', { api_url: url });
        expect(r.error).toBeUndefined();
        expect(r.result).toMatchObject({ text: '完', finish_reason: 'stop' });
        await socketClosed;
      } finally {
        await close(server);
      }
    });
  });

  describe('cancellation', () => {
    test('aborting the signal mid-stream throws cancelled and closes the upstream socket', async () => {
      const ac = new AbortController();
      const model = 'abort-model';
      let got = 0;
      const error = await streamChat(
        {
          provider: { api_url: fake.url, api_key: KEY, model_name: `${model}?tokens=500&tps=200&ttft=0`, timeout_s: 5 },
          messages: [{ role: 'user', content: '取消我' }],
          signal: ac.signal,
        },
        () => {
          if (++got === 3) ac.abort();
        },
      ).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LlmError);
      expect(error).toMatchObject({ code: 'cancelled', retryable: false, afterFirstToken: true });
      // Nothing is handed over once the signal is aborted.
      expect(got).toBe(3);
      expect((await closedUpstream(model)).chunks_sent).toBeLessThan(500);
    });

    test('a consumer that throws gets its own error back, and the upstream socket is closed', async () => {
      const model = 'throw-model';
      const mine = new Error('the consumer gave up');
      let got = 0;
      const error = await streamChat(
        {
          provider: { api_url: fake.url, api_key: KEY, model_name: `${model}?tokens=500&tps=200&ttft=0`, timeout_s: 5 },
          messages: [{ role: 'user', content: '只要开头' }],
        },
        () => {
          got++;
          throw mine;
        },
      ).catch((e: unknown) => e);
      expect(error).toBe(mine);
      expect(got).toBe(1);
      const closed = await closedUpstream(model);
      expect(closed.outcome).toBe('client_closed');
      expect(closed.chunks_sent).toBeLessThan(500);
    });

    test('an already-aborted signal, or one aborted during backoff, ends with cancelled at once', async () => {
      const r1 = await run(`fake-model?${FAST}`, '已取消', { signal: AbortSignal.abort() });
      expect(r1.error).toMatchObject({ code: 'cancelled', afterFirstToken: false });
      const ac = new AbortController();
      // Retry-After: 20 means a 20 s wait; the abort must cut it short.
      const r2 = await run('fake-model?quirk=http_429&retry_after=20', '退避时取消', {
        signal: ac.signal,
        onRetry: () => ac.abort(),
      });
      expect(r2.error).toMatchObject({ code: 'cancelled' });
      expect(r2.retries[0].delay_ms).toBeGreaterThanOrEqual(20_000);
      expect(r2.ms).toBeLessThan(5000);
    });
  });
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}

async function freePort(): Promise<number> {
  const s = createServer();
  const url = await listen(s);
  await close(s);
  return Number(new URL(url).port);
}
