import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runTool } from '../av-tools.ts';
import { startFakeSpeech, type FakeSpeechServer } from './server.ts';

let speech: FakeSpeechServer;
let dir: string;

beforeAll(async () => {
  speech = await startFakeSpeech({ apiKey: 'sk-test' });
  dir = await mkdtemp(path.join(tmpdir(), 'fake-speech-'));
});
afterAll(async () => {
  await speech.close();
  await rm(dir, { recursive: true, force: true });
});

const auth = { authorization: 'Bearer sk-test', 'content-type': 'application/json' };

function speak(body: Record<string, unknown>, headers: Record<string, string> = auth) {
  return fetch(`${speech.url}/audio/speech`, { method: 'POST', headers, body: JSON.stringify(body) });
}

async function probe(bytes: Buffer, name: string) {
  const file = path.join(dir, name);
  await writeFile(file, bytes);
  const json = await runTool('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,sample_rate:format=duration', '-of', 'json', file]);
  const parsed = JSON.parse(json.toString()) as { streams: { codec_name: string; sample_rate: string }[]; format: { duration: string } };
  return { codec: parsed.streams[0].codec_name, sampleRate: Number(parsed.streams[0].sample_rate), duration: Number(parsed.format.duration) };
}

describe('fake speech upstream', () => {
  test.each([
    ['mp3', 'audio/mpeg', 'mp3'],
    ['wav', 'audio/wav', 'pcm_s16le'],
    ['opus', 'audio/ogg', 'opus'],
    ['aac', 'audio/aac', 'aac'],
    ['flac', 'audio/flac', 'flac'],
  ])('response_format %s is real %s audio with a duration', async (format, mime, codec) => {
    const res = await speak({ model: 'tts-1', input: '从前有一座山，山里有一座庙。', voice: 'alloy', response_format: format });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(mime);
    const info = await probe(Buffer.from(await res.arrayBuffer()), `speech.${format}`);
    expect(info.codec).toBe(codec);
    expect(info.duration).toBeGreaterThan(0.5);
  });

  test('pcm is raw 24 kHz 16-bit mono, so its length gives its duration', async () => {
    const res = await speak({ model: 'tts-1', input: '你好，世界。', voice: 'nova', response_format: 'pcm' });
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(res.headers.get('content-type')).toBe('audio/pcm');
    expect(bytes.length % 2).toBe(0);
    expect(bytes.length / 2 / 24_000).toBeGreaterThan(0.3);
  });

  test('a faster speed gives shorter audio for the same words', async () => {
    const input = '今天天气很好，我们去公园散步吧。';
    const slow = await probe(Buffer.from(await (await speak({ model: 'tts-1', input, voice: 'alloy', response_format: 'wav', speed: 1 })).arrayBuffer()), 'slow.wav');
    const fast = await probe(Buffer.from(await (await speak({ model: 'tts-1', input, voice: 'alloy', response_format: 'wav', speed: 2 })).arrayBuffer()), 'fast.wav');
    expect(fast.duration).toBeLessThan(slow.duration * 0.8);
  });

  test('a wrong key is a 401 in OpenAI error shape, and /v1/models checks the key', async () => {
    const res = await speak({ model: 'tts-1', input: '你好', voice: 'alloy' }, { authorization: 'Bearer sk-wrong' });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
    expect((await fetch(`${speech.url}/models`, { headers: { authorization: 'Bearer sk-wrong' } })).status).toBe(401);
    const models = (await (await fetch(`${speech.url}/models`, { headers: auth })).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toContain('tts-1');
  });

  test('knobs: 429 with Retry-After, 500, refusal and the input length limit', async () => {
    speech.knobs.rateLimitTimes = 1;
    speech.knobs.retryAfterS = 3;
    const limited = await speak({ model: 'tts-1', input: '你好', voice: 'alloy' });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('3');

    speech.knobs.serverErrorTimes = 1;
    expect((await speak({ model: 'tts-1', input: '你好', voice: 'alloy' })).status).toBe(500);

    speech.knobs.refuseWords = ['禁词'];
    const refused = await speak({ model: 'tts-1', input: '这里有禁词', voice: 'alloy' });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('content_policy_violation');
    speech.knobs.refuseWords = [];

    const tooLong = await speak({ model: 'tts-1', input: '长'.repeat(4097), voice: 'alloy' });
    expect(tooLong.status).toBe(400);
    expect(((await tooLong.json()) as { error: { code: string; param: string } }).error).toMatchObject({ code: 'string_above_max_length', param: 'input' });

    // The failures were one-shot: the next request succeeds again.
    expect((await speak({ model: 'tts-1', input: '你好', voice: 'alloy' })).status).toBe(200);
  });

  test('stats count requests and the characters of successful syntheses', async () => {
    const before = { ...speech.stats };
    await speak({ model: 'tts-1', input: '一二三四五', voice: 'echo', response_format: 'wav' });
    await speak({ model: 'tts-1', input: '一二三', voice: 'nope' });
    expect(speech.stats.requests - before.requests).toBe(2);
    expect(speech.stats.characters - before.characters).toBe(5);
    expect(speech.stats.lastRequest).toMatchObject({ input: '一二三四五', voice: 'echo', response_format: 'wav' });
  });
});
