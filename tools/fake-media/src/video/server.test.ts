import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseSeedanceText } from './seedance.ts';
import { startFakeVideo, type FakeVideoServer } from './server.ts';

let fake: FakeVideoServer;
beforeAll(async () => {
  fake = await startFakeVideo({ kling: { accessKey: 'ak', secretKey: 'sk' }, seedanceApiKey: 'ark', prewarm: [], queuedMs: 5_000 });
});
afterAll(() => fake.close());

function jwt(payload: Record<string, unknown>, secret = 'sk'): string {
  const part = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const signed = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(payload)}`;
  return `${signed}.${createHmac('sha256', secret).update(signed).digest('base64url')}`;
}
const now = () => Math.floor(Date.now() / 1000);

async function klingCreate(body: Record<string, unknown>, token = jwt({ iss: 'ak', exp: now() + 60, nbf: now() - 5 })) {
  const res = await fetch(`${fake.url}/v1/videos/image2video`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as { code: number; message: string; data?: { task_id: string; task_status: string } } };
}

describe('simulated Kling', () => {
  test.each([
    ['expired', jwt({ iss: 'ak', exp: now() - 1, nbf: now() - 60 }), 1004],
    ['not yet valid', jwt({ iss: 'ak', exp: now() + 600, nbf: now() + 300 }), 1003],
    ['signed with another secret', jwt({ iss: 'ak', exp: now() + 60, nbf: now() - 5 }, 'other'), 1000],
    ['issued for another AccessKey', jwt({ iss: 'someone', exp: now() + 60, nbf: now() - 5 }), 1000],
    ['not a JWT', 'abc', 1002],
  ])('a token %s is refused with 401 and code %i', async (_, token, code) => {
    const { status, body } = await klingCreate({ image: 'https://x/y.png' }, token);
    expect(status).toBe(401);
    expect(body.code).toBe(code);
  });

  test.each([
    [{ image: 'https://x/y.png', duration: 5 }, 'duration'],
    [{ image: 'data:image/png;base64,AAAA' }, 'data: prefix'],
    [{ image: 'https://x/y.png', model_name: 'kling-v1-6', camera_control: { type: 'simple', config: { zoom: 5 } } }, 'not supported'],
    [{ image: 'https://x/y.png', camera_control: { type: 'simple', config: { zoom: 5, pan: 1 } } }, 'exactly one'],
    [{ image: 'https://x/y.png', camera_control: { type: 'simple', config: { zoom: 11 } } }, '[-10, 10]'],
  ])('%j is a 400 parameter error (%s)', async (body, words) => {
    const { status, body: answer } = await klingCreate(body);
    expect(status).toBe(400);
    expect(answer.code).toBe(1201);
    expect(answer.message).toContain(words);
  });

  test('a good request creates a submitted task that records its camera_control', async () => {
    const camera_control = { type: 'simple', config: { horizontal: 0, vertical: 0, pan: 0, tilt: 0, roll: 0, zoom: -3 } };
    const { status, body } = await klingCreate({ image: 'https://x/y.png', model_name: 'kling-v1', duration: '5', camera_control });
    expect(status).toBe(200);
    expect(body).toMatchObject({ code: 0, data: { task_status: 'submitted' } });
    expect(fake.tasks.get(body.data!.task_id)?.camera_control).toEqual(camera_control);
  });
});

describe('simulated Seedance', () => {
  test('text parameters are split from the prompt, short names included', () => {
    expect(parseSeedanceText('一只猫 --rt 16:9 --dur 10 --cf true --resolution 1080p')).toEqual({
      prompt: '一只猫',
      params: { ratio: '16:9', duration: '10', camerafixed: 'true', resolution: '1080p' },
    });
  });

  test('a queued task can be cancelled, then reads cancelled', async () => {
    const headers = { authorization: 'Bearer ark', 'content-type': 'application/json' };
    const created = await fetch(`${fake.url}/api/v3/contents/generations/tasks`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ model: 'doubao-seedance-1-0-lite-i2v-250428', content: [{ type: 'text', text: 'x --dur 5' }] }),
    });
    const { id } = (await created.json()) as { id: string };
    expect(id).toMatch(/^cgt-/);
    expect((await fetch(`${fake.url}/api/v3/contents/generations/tasks/${id}`, { method: 'DELETE', headers })).status).toBe(200);
    const task = (await (await fetch(`${fake.url}/api/v3/contents/generations/tasks/${id}`, { headers })).json()) as { status: string };
    expect(task.status).toBe('cancelled');
  });

  test('an unknown duration is a 400 InvalidParameter', async () => {
    const res = await fetch(`${fake.url}/api/v3/contents/generations/tasks`, {
      method: 'POST',
      headers: { authorization: 'Bearer ark', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'doubao-seedance-1-0-lite-i2v-250428', content: [{ type: 'text', text: 'x --dur 30' }] }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('InvalidParameter');
  });
});
