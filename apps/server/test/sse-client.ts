import { createParser } from 'eventsource-parser';

export interface ReceivedEvent {
  id: number;
  data: any;
}

export interface FollowResult {
  status: number;
  headers: Headers;
  events: ReceivedEvent[];
  comments: string[];
  /** Text rebuilt from token deltas, honouring `reset` events, as a client does. */
  text: string;
  ended: 'closed' | 'aborted';
}

/**
 * Follows an SSE endpoint with fetch and eventsource-parser, as the web app does. Stops when the
 * server closes, or when `stopWhen` says so (a client that walks away mid-run).
 */
export async function follow(
  url: string,
  opts: { cookie?: string; token?: string; lastEventId?: number; method?: string; body?: unknown; stopWhen?: (events: ReceivedEvent[]) => boolean; timeoutMs?: number } = {},
): Promise<FollowResult> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), opts.timeoutMs ?? 20_000);
  const res = await fetch(url, {
    method: opts.method ?? 'GET',
    headers: {
      accept: 'text/event-stream',
      ...(opts.cookie && { cookie: opts.cookie }),
      ...(opts.token && { authorization: `Bearer ${opts.token}` }),
      ...(opts.lastEventId !== undefined && { 'last-event-id': String(opts.lastEventId) }),
      ...(opts.body !== undefined && { 'content-type': 'application/json' }),
    },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: controller.signal,
  });
  const events: ReceivedEvent[] = [];
  const comments: string[] = [];
  let ended: FollowResult['ended'] = 'closed';
  let stop = false;
  const parser = createParser({
    onEvent: (e) => {
      if (stop) return;
      events.push({ id: Number(e.id), data: JSON.parse(e.data) });
      if (opts.stopWhen?.(events)) stop = true;
    },
    onComment: (c) => comments.push(c.trim()),
  });
  try {
    if (res.body) {
      const decoder = new TextDecoder();
      for await (const chunk of res.body) {
        parser.feed(decoder.decode(chunk, { stream: true }));
        if (stop) {
          ended = 'aborted';
          controller.abort();
          break;
        }
      }
    }
  } catch (err) {
    if (!stop) throw err;
    ended = 'aborted';
  } finally {
    clearTimeout(timer);
  }
  return { status: res.status, headers: res.headers, events, comments, text: rebuild(events.map((e) => e.data)), ended };
}

/**
 * `follow`, and `opened`: resolves at the stream's first event (a project stream's hello), so what the
 * test does next reaches an open stream instead of racing its connection.
 */
export function followOpened(url: string, opts: Parameters<typeof follow>[1] = {}) {
  let hello!: () => void;
  const opened = new Promise<void>((r) => (hello = r));
  const result = follow(url, {
    ...opts,
    stopWhen: (events) => {
      hello();
      return opts.stopWhen?.(events) ?? false;
    },
  });
  return { opened, result };
}

export function rebuild(events: { type: string; content?: string }[], start = ''): string {
  let text = start;
  for (const e of events) {
    if (e.type === 'reset') text = '';
    if (e.type === 'token') text += e.content;
  }
  return text;
}

export const terminal = (e: ReceivedEvent) =>
  e.data.type === 'done' || e.data.type === 'error' || (e.data.type === 'stage_update' && ['cancelled', 'interrupted'].includes(e.data.status));
