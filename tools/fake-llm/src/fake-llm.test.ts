import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  createFakeLlmHandler,
  expectedReasoning,
  expectedText,
  expectedTokens,
  MOVEMENT_TYPES,
  startFakeLlm,
  type ChatRequest,
  type FakeLlmServer,
  type RequestEndInfo,
} from './index.ts';

const FAST = 'tps=5000&ttft=0';
let server: FakeLlmServer;
const ended: RequestEndInfo[] = [];

beforeAll(async () => {
  server = await startFakeLlm({ onRequestEnd: (info) => ended.push(info) });
});
afterAll(() => server.close());

const chat = (content: string, model = `fake-model?tokens=60&${FAST}`, extra: Partial<ChatRequest> = {}): ChatRequest => ({
  model,
  messages: [{ role: 'user', content }],
  ...extra,
});

function post(body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${server.url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

/** The `data:` payloads of an SSE body, parsed (except `[DONE]`). */
function sseData(body: string): unknown[] {
  return body
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => (block === 'data: [DONE]' ? '[DONE]' : JSON.parse(block.slice(6))));
}

interface StreamChunk {
  choices: { delta: { content?: string | null; reasoning_content?: string; role?: string }; finish_reason: string | null }[];
  usage?: { prompt_tokens: number; completion_tokens: number } | null;
  x_seq?: number;
  x_ts?: number;
}

/** Raw body bytes as they came off the socket, one Buffer per read. */
function rawReads(body: unknown): Promise<Buffer[]> {
  const url = new URL(`${server.url}/chat/completions`);
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      const reads: Buffer[] = [];
      res.on('data', (b: Buffer) => reads.push(b));
      res.on('end', () => resolve(reads));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('deterministic answers', () => {
  test('the same request always gets the same text; the prompt and the model change it', () => {
    const a = expectedText(chat('一个关于灯塔的故事'));
    expect(expectedText(chat('一个关于灯塔的故事'))).toBe(a);
    expect(expectedText(chat('一个关于列车的故事'))).not.toBe(a);
    expect(expectedText(chat('一个关于灯塔的故事', `other-model?tokens=60&${FAST}`))).not.toBe(a);
    // Knobs other than length do not change the text.
    expect(expectedText(chat('一个关于灯塔的故事', 'fake-model?tokens=60&tps=3'))).toBe(a);
  });

  test('the text mixes Han, ASCII, punctuation and multi-codepoint emoji, in the requested number of tokens', () => {
    const tokens = expectedTokens(chat('长一点的故事', 'fake-model?tokens=2000'));
    expect(tokens).toHaveLength(2000);
    const text = tokens.join('');
    expect(text).toMatch(/\p{Script=Han}/u);
    expect(text).toMatch(/[A-Za-z]{3}/);
    expect(text).toMatch(/[,。!?]/);
    expect(text).toContain('🎬');
    expect(text).toMatch(/\u200d/u); // a ZWJ sequence such as 👨‍👩‍👧
    expect(text).toContain('"'); // exercises JSON escaping
    // Every token is whole grapheme clusters: no lone surrogate, no emoji split across tokens.
    const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
    for (const t of tokens) expect(t).not.toMatch(loneSurrogate);
    expect(tokens).toContain('👨‍👩‍👧');
  });

  test('headers override the model name, which overrides the defaults', () => {
    const req = chat('x', 'fake-model?tokens=10');
    expect(expectedTokens(req)).toHaveLength(10);
    expect(expectedTokens(req, { headers: { 'x-fake-tokens': '7' } })).toHaveLength(7);
    expect(expectedTokens(chat('x', 'fake-model'), { defaults: { tokens: 12 } })).toHaveLength(12);
    expect(expectedTokens(chat('x', 'fake-model'))).toHaveLength(300);
  });

  test('a model named *-reasoner thinks before answering, as deepseek-reasoner does', () => {
    expect(expectedReasoning(chat('x', 'fake-model-reasoner'))).not.toBe('');
    expect(expectedReasoning(chat('x', 'fake-model'))).toBe('');
  });
});

describe('streaming like OpenAI', () => {
  test('a role chunk, then content chunks stamped with x_seq and x_ts, then finish, usage and [DONE]', async () => {
    const body = chat('流式输出', undefined, { stream: true, stream_options: { include_usage: true } });
    const before = Date.now();
    const res = await post(body);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = sseData(await res.text());
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1) as StreamChunk[];
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '', refusal: null });
    const usage = chunks.at(-1)!;
    expect(usage.choices).toEqual([]);
    expect(usage.usage).toMatchObject({ completion_tokens: 60 });
    expect(chunks.at(-2)!.choices[0].finish_reason).toBe('stop');
    const content = chunks.filter((c) => c.x_seq !== undefined);
    expect(content.map((c) => c.x_seq)).toEqual([...Array(60).keys()]);
    for (const c of content) {
      expect(c.x_ts).toBeGreaterThanOrEqual(before);
      expect(c.x_ts).toBeLessThanOrEqual(Date.now() + 1);
    }
    expect(content.map((c) => c.choices[0].delta.content)).toEqual(expectedTokens(body));
  });

  test('without include_usage there is no usage chunk; with usage_chunk there is one anyway', async () => {
    const plain = sseData(await (await post(chat('无用量', undefined, { stream: true }))).text()) as StreamChunk[];
    expect(plain.some((c) => typeof c === 'object' && c.usage)).toBe(false);
    const forced = sseData(await (await post(chat('无用量', `fake-model?tokens=5&${FAST}&quirk=usage_chunk`, { stream: true }))).text()) as StreamChunk[];
    expect(forced.find((c) => typeof c === 'object' && c.usage)?.choices).toEqual([]);
  });

  test('max_tokens cuts the answer with finish_reason "length"', async () => {
    const body = chat('限长', undefined, { max_tokens: 4 });
    const json = await (await post(body)).json();
    expect(json.choices[0].finish_reason).toBe('length');
    expect(json.choices[0].message.content).toBe(expectedText(body));
    expect(expectedTokens(body)).toHaveLength(4);
  });

  test('a non-streamed request gets one chat.completion with usage', async () => {
    const body = chat('非流式', `fake-model?tokens=20&${FAST}&quirk=reasoning&reasoning_tokens=5`);
    const json = await (await post(body)).json();
    expect(json.object).toBe('chat.completion');
    expect(json.choices[0].message.content).toBe(expectedText(body));
    expect(json.choices[0].message.reasoning_content).toBe(expectedReasoning(body));
    expect(json.usage).toMatchObject({ completion_tokens: 25, completion_tokens_details: { reasoning_tokens: 5 } });
  });
});

describe('quirks', () => {
  test('split_utf8 cuts network writes inside multi-byte characters, and the bytes still decode to the answer', async () => {
    const body = chat('切开的字', `fake-model?tokens=30&${FAST}&quirk=split_utf8`, { stream: true });
    const reads = await rawReads(body);
    // A read that starts with a UTF-8 continuation byte (10xxxxxx) was cut inside a character.
    expect(reads.some((b) => (b[0] & 0xc0) === 0x80)).toBe(true);
    const text = (sseData(Buffer.concat(reads).toString('utf8')) as StreamChunk[])
      .map((c) => (typeof c === 'object' ? (c.choices[0]?.delta.content ?? '') : ''))
      .join('');
    expect(text).toBe(expectedText(body));
  });

  test('reasoning streams reasoning_content before the answer', async () => {
    const body = chat('先想后写', `fake-model?tokens=10&${FAST}&quirk=reasoning&reasoning_tokens=6`, { stream: true });
    const chunks = (sseData(await (await post(body)).text()) as StreamChunk[]).filter((c) => typeof c === 'object' && c.x_seq !== undefined);
    expect(chunks.slice(0, 6).every((c) => c.choices[0].delta.reasoning_content && c.choices[0].delta.content === null)).toBe(true);
    expect(chunks.slice(0, 6).map((c) => c.choices[0].delta.reasoning_content).join('')).toBe(expectedReasoning(body));
    expect(chunks.slice(6).map((c) => c.choices[0].delta.content).join('')).toBe(expectedText(body));
  });

  test('keepalive, empty_chunks and no_done shape the stream as named', async () => {
    const body = chat('怪癖', `fake-model?tokens=8&${FAST}&quirk=keepalive,empty_chunks,no_done`, { stream: true });
    const raw = await (await post(body)).text();
    expect(raw).toContain(': keep-alive\n\n');
    expect(raw).toContain('"delta":{"content":""}');
    expect(raw).not.toContain('[DONE]');
    expect(raw).not.toContain('"finish_reason":"stop"');
  });

  test('http_429 with fail_times=1 fails once with Retry-After, then answers', async () => {
    const body = chat('限流一次', `fake-model?tokens=3&${FAST}&quirk=http_429&fail_times=1&retry_after=2`);
    const first = await post(body);
    expect(first.status).toBe(429);
    expect(first.headers.get('retry-after')).toBe('2');
    expect((await first.json()).error.code).toBe('rate_limit_exceeded');
    const second = await post(body);
    expect(second.status).toBe(200);
    expect((await second.json()).choices[0].message.content).toBe(expectedText(body));
  });

  test.each([
    ['bad_key', 401, 'invalid_api_key'],
    ['model_not_found', 404, 'model_not_found'],
    ['http_500', 500, null],
    ['http_503', 503, null],
  ])('%s answers HTTP %i with OpenAI’s error body', async (quirk, status, code) => {
    const res = await post(chat('错误', `fake-model?quirk=${quirk}`));
    expect(res.status).toBe(status);
    expect((await res.json()).error).toMatchObject({ code, type: expect.any(String), message: expect.any(String) });
  });

  test('not_openai answers a 200 HTML page', async () => {
    const res = await post(chat('网页', 'fake-model?quirk=not_openai', { stream: true }));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(await res.text()).toMatch(/<html>/);
  });

  test('cut_mid_stream destroys the socket after `after` tokens', async () => {
    const res = await post(chat('断流', `fake-model?tokens=20&${FAST}&quirk=cut_mid_stream&after=3`, { stream: true }));
    await expect(res.text()).rejects.toThrow(/terminated/);
  });

  test('stall goes silent until the client leaves, and the server sees it leave', async () => {
    const res = await post(chat('卡住', `fake-model?tokens=20&${FAST}&quirk=stall&after=2`, { stream: true }));
    const reader = res.body!.getReader();
    await reader.read();
    const closed = new Promise<RequestEndInfo>((resolve) => {
      const t = setInterval(() => {
        const e = ended.find((x) => x.outcome === 'client_closed');
        if (e) resolve(e), clearInterval(t);
      }, 5);
    });
    const silence = await Promise.race([reader.read().then(() => 'data'), new Promise((r) => setTimeout(() => r('silence'), 200))]);
    // At most the two tokens before the stall may still be in flight; then nothing.
    if (silence === 'data') expect(await Promise.race([reader.read().then(() => 'data'), new Promise((r) => setTimeout(() => r('silence'), 200))])).toBe('silence');
    await reader.cancel();
    expect((await closed).stream).toBe(true);
  });

  test('an unknown quirk is a 400 that names it', async () => {
    const res = await post(chat('x', 'fake-model?quirk=nonsense'));
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toContain('nonsense');
  });
});

describe('JSON answers', () => {
  const storyboard = (quirk = '') =>
    chat('那天夜里,小林找到一封信。信是奶奶写的!她说别怕黑。小林抬头看见灯塔。他终于明白了。', `fake-model?${FAST}${quirk && '&quirk=' + quirk}`, {
      response_format: { type: 'json_object' },
      messages: [
        { role: 'system', content: '你是分镜师。输出 JSON。' },
        { role: 'user', content: '请为以下文案生成分镜。\n那天夜里,小林找到一封信。信是奶奶写的!她说别怕黑。小林抬头看见灯塔。他终于明白了。' },
      ],
    });

  test('a storyboard prompt gets one shot per sentence, with every field', () => {
    const { shots } = JSON.parse(expectedText(storyboard()));
    expect(shots).toHaveLength(5);
    expect(shots[1]).toMatchObject({ sequence_number: 2, narration_text: '信是奶奶写的!' });
    for (const s of shots) {
      expect(Object.keys(s).sort()).toEqual(['duration_seconds', 'image_prompt', 'narration_text', 'scene_description', 'sequence_number']);
      expect(s.duration_seconds).toBeGreaterThanOrEqual(3);
    }
  });

  test('a short text is padded to three shots and a long one merged into eight', () => {
    const short = { ...storyboard(), messages: [{ role: 'user', content: '生成分镜:一句话。' }] };
    expect(JSON.parse(expectedText(short)).shots).toHaveLength(3);
    const long = { ...storyboard(), messages: [{ role: 'user', content: '分镜:' + '他走了。'.repeat(20) }] };
    expect(JSON.parse(expectedText(long)).shots).toHaveLength(8);
  });

  test('a camera prompt gets one movement per shot, from a JSON array or from numbered lines', () => {
    const fromJson = chat(JSON.stringify([{ sequence_number: 3 }, { sequence_number: 4 }]), 'fake-model', {
      response_format: { type: 'json_object' },
      messages: [
        { role: 'system', content: '为每个镜头设计运镜。' },
        { role: 'user', content: JSON.stringify([{ sequence_number: 3, scene_description: '特写' }, { sequence_number: 4, scene_description: '远景' }]) },
      ],
    });
    const { movements } = JSON.parse(expectedText(fromJson));
    expect(movements.map((m: { sequence_number: number }) => m.sequence_number)).toEqual([3, 4]);
    for (const m of movements) {
      expect(MOVEMENT_TYPES).toContain(m.movement_type);
      expect(['slow', 'medium', 'fast']).toContain(m.params.speed);
      expect(['linear', 'ease_in', 'ease_out', 'ease_in_out']).toContain(m.params.easing);
      expect(m.params.intensity).toBeGreaterThanOrEqual(0);
      expect(m.params.intensity).toBeLessThanOrEqual(1);
    }
    const numbered = { ...fromJson, messages: [{ role: 'user', content: 'camera movements for:\n1. 城市远景\n2. 奶奶的眼睛特写\n镜头3:告别' }] };
    expect(JSON.parse(expectedText(numbered)).movements).toHaveLength(3);
  });

  test('json_fenced wraps the JSON in fences with prose; json_broken and json_hopeless do not parse', () => {
    const clean = expectedText(storyboard());
    const fenced = expectedText(storyboard('json_fenced'));
    expect(fenced.startsWith('```json\n' + clean + '\n```')).toBe(true);
    expect(() => JSON.parse(expectedText(storyboard('json_broken')))).toThrow();
    expect(expectedText(storyboard('json_broken'))).toMatch(/sequence_number:1/);
    expect(() => JSON.parse(expectedText(storyboard('json_hopeless')))).toThrow();
  });

  test('the JSON streams token by token and arrives whole', async () => {
    const body = { ...storyboard(), stream: true };
    const chunks = (sseData(await (await post(body)).text()) as StreamChunk[]).filter((c) => typeof c === 'object' && c.x_seq !== undefined);
    expect(chunks.length).toBeGreaterThan(50);
    expect(chunks.map((c) => c.choices[0].delta.content).join('')).toBe(expectedText(storyboard()));
  });
});

describe('HTTP surface', () => {
  test('GET /models lists models; other paths answer 404 like OpenAI', async () => {
    const models = await (await fetch(`${server.url}/models`)).json();
    expect(models.data[0]).toMatchObject({ id: 'fake-model', object: 'model' });
    const res = await fetch(`${server.url}/nope`, { method: 'POST' });
    expect(res.status).toBe(404);
    expect((await res.json()).error.message).toMatch(/Invalid URL/);
    expect((await fetch(server.url.replace(/\/v1$/, '/chat/completions'), { method: 'POST', body: '{}' })).status).toBe(404);
  });

  test('with an apiKey, a wrong key is a 401 that does not repeat the key', async () => {
    const guarded = await startFakeLlm({ apiKey: 'sk-right-key-123456' });
    try {
      const res = await fetch(`${guarded.url}/chat/completions`, {
        method: 'POST',
        headers: { authorization: 'Bearer sk-wrong-key-abcdefgh', 'content-type': 'application/json' },
        body: JSON.stringify(chat('x')),
      });
      expect(res.status).toBe(401);
      const err = (await res.json()).error;
      expect(err.code).toBe('invalid_api_key');
      expect(err.message).not.toContain('sk-wrong-key-abcdefgh');
      const ok = await fetch(`${guarded.url}/chat/completions`, {
        method: 'POST',
        headers: { authorization: 'Bearer sk-right-key-123456' },
        body: JSON.stringify(chat('x', `fake-model?tokens=2&${FAST}`)),
      });
      expect(ok.status).toBe(200);
    } finally {
      await guarded.close();
    }
  });

  test('the handler mounts under a prefix and accepts a body parsed by the host server', async () => {
    const handler = createFakeLlmHandler({ basePath: '/fake-llm/v1', defaults: { tokens: 4, ttft_ms: 0, tps: 5000 } });
    const host = createServer((req, res) => {
      if (req.url?.startsWith('/fake-llm/')) {
        // As a framework would: the body is read first, then handed over.
        const parts: Buffer[] = [];
        req.on('data', (b) => parts.push(b)).on('end', () => handler(req, res, JSON.parse(Buffer.concat(parts).toString())));
      } else res.end('studio');
    });
    await new Promise<void>((r) => host.listen(0, '127.0.0.1', r));
    try {
      const port = (host.address() as AddressInfo).port;
      const body = chat('挂载', 'fake-model');
      const res = await fetch(`http://127.0.0.1:${port}/fake-llm/v1/chat/completions`, { method: 'POST', body: JSON.stringify(body) });
      expect((await res.json()).choices[0].message.content).toBe(expectedText(body, { defaults: { tokens: 4 } }));
      expect(handler.stats.completed).toBe(1);
    } finally {
      await new Promise((r) => host.close(r));
    }
  });
});
