import { RunEvent, isTerminalEvent } from '@ai-story/contracts';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { openEventStream } from './run-stream';

/** One scripted answer of the fake server: a status, and body chunks written one by one. */
interface Reply {
  status?: number;
  chunks?: (string | Uint8Array)[];
  /** End the body with an error (a cut connection) instead of closing it. */
  cut?: boolean;
}

function fakeFetch(replies: Reply[]) {
  const urls: string[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL) => {
    urls.push(String(input));
    const reply = replies.shift();
    if (!reply) throw new TypeError('no more scripted replies');
    const status = reply.status ?? 200;
    if (status === 204) return new Response(null, { status });
    const encoder = new TextEncoder();
    const chunks = reply.chunks ?? [];
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const next = chunks.shift();
        await new Promise((r) => setTimeout(r, 1));
        if (next === undefined) {
          if (reply.cut) controller.error(new TypeError('terminated'));
          else controller.close();
          return;
        }
        controller.enqueue(typeof next === 'string' ? encoder.encode(next) : next);
      },
    });
    return new Response(status === 200 ? body : JSON.stringify({ error: { code: 'not_found', message: 'No such run' } }), {
      status,
      headers: { 'Content-Type': status === 200 ? 'text/event-stream' : 'application/json' },
    });
  });
  vi.stubGlobal('fetch', fetchMock);
  return { urls, fetchMock };
}

const frame = (id: number, event: object) => `id: ${id}\ndata: ${JSON.stringify(event)}\n\n`;
const token = (content: string) => ({ type: 'token', content });
const done = (text: string) => ({
  type: 'done',
  run_id: 'r1',
  stage: 'rewrite',
  full_text: text,
  output: { rewritten_text: text },
  run: {
    id: 'r1', project_id: 'p1', stage: 'rewrite', status: 'completed', input: {}, prompt: null, provider: 'demo', provider_id: null,
    model: 'demo', is_simulated: true, output: null, text: '', usage: null, error: null, source: 'ai', created_by: null,
    created_at: '2026-01-01T00:00:00Z', started_at: null, finished_at: null,
  },
});

function follow(lastEventId?: string) {
  const texts: string[] = [];
  const types: string[] = [];
  const handle = openEventStream({
    path: '/runs/r1/events',
    schema: RunEvent,
    isTerminal: isTerminalEvent,
    lastEventId,
    onEvent: (e) => {
      types.push(e.type);
      if (e.type === 'token') texts.push(e.content);
    },
  });
  return { handle, text: () => texts.join(''), types };
}

afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

describe('openEventStream', () => {
  test('events cut anywhere by the network (mid-line, mid-character) arrive whole, and a terminal event ends the stream', async () => {
    const body = 'retry: 5\n' + frame(1, token('黑洞')) + frame(2, token('是时空🌌')) + frame(3, done('黑洞是时空🌌'));
    const bytes = new TextEncoder().encode(body);
    // 7-byte pieces split UTF-8 characters and lines everywhere
    const pieces: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i += 7) pieces.push(bytes.slice(i, i + 7));
    const { fetchMock } = fakeFetch([{ chunks: pieces }]);
    const s = follow();
    await expect(s.handle.done).resolves.toEqual({ reason: 'terminal' });
    expect(s.text()).toBe('黑洞是时空🌌');
    expect(s.types).toEqual(['token', 'token', 'done']);
    expect(s.handle.lastEventId).toBe('3');
    expect(fetchMock).toHaveBeenCalledTimes(1);
  });

  test('after a drop it reconnects with ?last_event_id= and gets only what it missed', async () => {
    const { urls } = fakeFetch([
      { chunks: ['retry: 5\n', frame(1, token('一')), frame(2, token('二'))], cut: true },
      { chunks: [frame(3, token('三')), frame(4, done('一二三'))] },
    ]);
    const s = follow();
    await expect(s.handle.done).resolves.toEqual({ reason: 'terminal' });
    expect(s.text()).toBe('一二三');
    expect(urls).toEqual(['/api/v1/runs/r1/events', '/api/v1/runs/r1/events?last_event_id=2']);
  });

  test('a body that ends without a terminal event is a drop too; a 204 on the reconnect ends quietly', async () => {
    const { urls } = fakeFetch([{ chunks: ['retry: 5\n', frame(7, token('半'))] }, { status: 204 }]);
    const s = follow();
    await expect(s.handle.done).resolves.toEqual({ reason: 'no_content' });
    expect(urls.at(-1)).toBe('/api/v1/runs/r1/events?last_event_id=7');
  });

  test('an unknown or malformed event is logged and skipped, never a crash', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    fakeFetch([
      {
        chunks: [
          frame(1, token('甲')),
          frame(2, { type: 'from_the_future', run_id: 'r1', stage: 'rewrite' }),
          'id: 3\ndata: {not json\n\n',
          frame(4, token('乙')),
          frame(5, done('甲乙')),
        ],
      },
    ]);
    const s = follow();
    await expect(s.handle.done).resolves.toEqual({ reason: 'terminal' });
    expect(s.text()).toBe('甲乙');
    expect(warn).toHaveBeenCalledTimes(2);
  });

  test('a 404 stops at once with the server error; no retry', async () => {
    const { fetchMock } = fakeFetch([{ status: 404 }]);
    const s = follow();
    const end = await s.handle.done;
    expect(end.reason).toBe('failed');
    expect(end.reason === 'failed' && (end.error as { code: string }).code).toBe('not_found');
    expect(fetchMock).toHaveBeenCalledTimes(1);
  });

  test('a resumed stream starts from the id it was given', async () => {
    const { urls } = fakeFetch([{ chunks: [frame(11, done('全文'))] }]);
    const s = follow('10');
    await expect(s.handle.done).resolves.toEqual({ reason: 'terminal' });
    expect(urls).toEqual(['/api/v1/runs/r1/events?last_event_id=10']);
  });

  test('close() ends a live stream and stops reconnecting', async () => {
    fakeFetch([{ chunks: [frame(1, token('进行中')), ...Array.from({ length: 1000 }, () => ': heartbeat\n\n')] }]);
    const s = follow();
    await new Promise((r) => setTimeout(r, 20));
    s.handle.close();
    await expect(s.handle.done).resolves.toEqual({ reason: 'closed' });
    expect(s.text()).toBe('进行中');
  });
});
