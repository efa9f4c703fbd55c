import type { Run } from '@ai-story/contracts';
import { vi } from 'vitest';

/**
 * A fake studio behind `fetch`, for the composables' tests: JSON answers by method and path, and
 * event streams that the test writes into while they are open (closed when the client aborts).
 * Only the network is fake; the stream client, the parser and the composables are the real ones.
 */
export interface FakeStream {
  path: string;
  send(event: object): void;
  end(): void;
  readonly closedByClient: boolean;
}

type JsonReply = { status?: number; body?: unknown };

export function fakeApi() {
  const streams: FakeStream[] = [];
  const calls: string[] = [];
  const routes = new Map<string, (body: unknown) => JsonReply>();
  let nextId = 1;

  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input), 'http://studio.test');
    const method = init?.method ?? 'GET';
    calls.push(`${method} ${url.pathname}${url.search}`);
    if (url.pathname.endsWith('/events')) return openStream(url.pathname, init?.signal ?? undefined);
    const route = routes.get(`${method} ${url.pathname}`);
    if (!route) return json({ error: { code: 'not_found', message: `no route ${method} ${url.pathname}` } }, 404);
    const reply = route(init?.body ? JSON.parse(String(init.body)) : undefined);
    return json(reply.body ?? null, reply.status ?? 200);
  });
  vi.stubGlobal('fetch', fetchMock);

  function json(body: unknown, status: number) {
    return new Response(status === 204 ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
  }

  function openStream(path: string, signal?: AbortSignal): Response {
    const encoder = new TextEncoder();
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    let closed = false;
    const stream: FakeStream = {
      path,
      send(event) {
        if (!closed) controller.enqueue(encoder.encode(`id: ${nextId++}\ndata: ${JSON.stringify(event)}\n\n`));
      },
      end() {
        if (!closed) controller.close();
        closed = true;
      },
      get closedByClient() {
        return closedByClient;
      },
    };
    let closedByClient = false;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
      },
      cancel() {
        closedByClient = true;
        closed = true;
      },
    });
    signal?.addEventListener('abort', () => {
      closedByClient = true;
      if (!closed) controller.error(signal.reason);
      closed = true;
    });
    streams.push(stream);
    return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
  }

  return {
    calls,
    streams,
    /** Streams opened on this path so far. */
    streamsOn: (path: string) => streams.filter((s) => s.path === `/api/v1${path}`),
    on(method: string, path: string, reply: JsonReply | ((body: unknown) => JsonReply)) {
      routes.set(`${method} /api/v1${path}`, typeof reply === 'function' ? reply : () => reply);
    },
  };
}

export function makeRun(over: Partial<Run> = {}): Run {
  return {
    id: 'r1',
    project_id: 'p1',
    stage: 'rewrite',
    status: 'running',
    input: {},
    prompt: null,
    provider: 'demo',
    provider_id: null,
    model: 'demo-model',
    is_simulated: true,
    output: null,
    text: '',
    usage: null,
    error: null,
    source: 'ai',
    created_by: null,
    created_at: '2026-01-01T00:00:00Z',
    started_at: '2026-01-01T00:00:00Z',
    finished_at: null,
    ...over,
  };
}
