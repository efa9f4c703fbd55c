import type { FastifyReply, FastifyRequest } from 'fastify';
import type { LoggedEvent } from './event-log.ts';

/** Bytes a subscriber may fall behind before it is dropped (it can resume with Last-Event-ID). */
const MAX_BUFFERED_BYTES = 1024 * 1024;

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  connection: 'keep-alive',
} as const;

/** The id a reconnecting client already has: the `Last-Event-ID` header or `?last_event_id=` (fetch clients). */
export function lastEventId(req: FastifyRequest): number | null {
  const raw = req.headers['last-event-id'] ?? (req.query as { last_event_id?: string } | undefined)?.last_event_id;
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value === undefined || value === '') return null;
  const n = Number(value);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/** An event to send; `id: null` for one that has no place in the log (a newcomer's catch-up). */
export type SseEvent = Omit<LoggedEvent, 'id'> & { id: number | null };

export interface SseStream {
  send(event: SseEvent): void;
  end(): void;
  readonly closed: boolean;
  onClose(listener: () => void): void;
}

/**
 * Takes over the response for an event stream: the SSE hygiene of DESIGN §4 done once (headers, a
 * retry hint, heartbeats every ~15 s, no compression) and a bound on how far a slow client may lag.
 *
 * After the head, events go to the socket directly, each tick's in one write with its chunk framing
 * (the hot path: a run's every token passes here once per subscriber). Through `res.write` each event
 * took Node's chunked-encoding path, with a cork, a writev of four pieces and a tick of its own.
 */
export function openSse(req: FastifyRequest, reply: FastifyReply, heartbeatMs: number): SseStream {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, SSE_HEADERS);
  res.socket?.setNoDelay(true);
  res.write('retry: 2000\n\n'); // the head leaves with it, through Node
  // A response waiting behind another on its connection (HTTP pipelining) has no socket yet: it
  // keeps to Node's path. HTTP/1.1 frames the body in chunks; HTTP/1.0 reads it until the close.
  const socket = res.socket;
  // The head waits for the catch-up sent in this same tick, so that a stream opens in one write
  // (Node's own cork lets it go a tick before our first flush).
  socket?.cork();
  let opening = socket !== null;
  const frame = res.chunkedEncoding ? (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n` : (text: string) => text;
  const writeOut = socket ? (text: string) => socket.write(frame(text)) : (text: string) => res.write(text);
  const buffered = () => (socket ? socket.writableLength : res.writableLength);
  let closed = false;
  let pending = '';
  const listeners: (() => void)[] = [];
  const { metrics } = req.server.services; // streams open and events sent (GET /metrics)
  metrics.sseStreams.inc();
  const close = () => {
    if (closed) return;
    closed = true;
    metrics.sseStreams.dec();
    clearInterval(heartbeat);
    for (const l of listeners) l();
  };
  const flush = () => {
    if (pending && !closed && !socket?.destroyed) {
      writeOut(pending);
      pending = '';
      if (buffered() > MAX_BUFFERED_BYTES) {
        req.log.warn({ buffered: buffered() }, 'dropping a subscriber that cannot keep up');
        res.destroy();
        close();
      }
    }
    if (opening) {
      opening = false;
      socket!.uncork();
    }
  };
  const queue = (text: string) => {
    // Events sent in the same tick (a token and its progress, a replay) leave in one socket write.
    if (!pending) process.nextTick(flush);
    pending += text;
  };
  if (opening) process.nextTick(flush); // the head leaves even when nothing follows it yet
  const heartbeat = setInterval(() => queue(': heartbeat\n\n'), heartbeatMs);
  heartbeat.unref();
  req.raw.on('close', close);
  res.on('close', close);
  return {
    send(event) {
      if (closed) return;
      queue(event.id === null ? `data: ${event.json}\n\n` : `id: ${event.id}\ndata: ${event.json}\n\n`);
      metrics.sseEvents.inc();
    },
    end() {
      if (closed) return;
      // The last events and the body's end leave together: res.end uncorks the socket fully.
      socket?.cork();
      flush();
      res.end();
      close();
    },
    get closed() {
      return closed;
    },
    onClose(listener) {
      if (closed) listener();
      else listeners.push(listener);
    },
  };
}
