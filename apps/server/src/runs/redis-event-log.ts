import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { Redis } from 'ioredis';
import { eventsAfter, tokenJson, type EventLog, type LoggedEvent, type Subscriber } from './event-log.ts';

/**
 * The event log of scale-out mode (DESIGN §2, §4): one Redis stream per run and per project, so a run
 * executed by one studio instance is followed, resumed and replayed through any other.
 *
 * - Every instance keeps a mirror of the streams it writes or follows; the synchronous reads of
 *   `EventLog` (since, lastId, isClosed) answer from it, once `attach` has loaded the stream.
 * - Appends are queued and written every BATCH_MS in one pipeline: never a round trip per token.
 * - One blocking connection per instance (RedisStreamReader) reads every followed stream with one
 *   XREAD BLOCK, however many subscribers there are.
 * - Stream entry ids are `<event id>-0`, so an event's id (the SSE id, Last-Event-ID) is the integer
 *   part of its entry's id, and Redis itself refuses an id that does not increase.
 */

/** Queued events are written this often: a few ms of delay bounds the writes per instance, not per run. */
export const BATCH_MS = 5;
/** A stream nobody writes to goes after this long (a crashed writer's streams do not stay forever). */
const IDLE_TTL_MS = 60 * 60_000;
/** A mirror of another instance's stream leaves memory this long after its last subscriber. */
const FOLLOWED_MIRROR_MS = 60_000;
/** An instance with subscribers for a stream says so in Redis for this long, renewed at half of it. */
const FOLLOWED_MARK_MS = 60_000;
const READ_COUNT = 1_000;
const BLOCK_MS = 10_000;

/**
 * Who numbers a stream's events:
 * - `writer`: the one instance that writes it (a run's stream: only its owner writes), synchronously,
 *   so the owner knows each id at once (the run's last id is saved with its ending);
 * - `redis`: a script numbers each batch atomically in Redis (a project's stream: two instances may
 *   run two stages of one project at once). A new stream starts from Redis's clock in ms, so a client
 *   holding an id of a stream that expired cannot take the new stream's ids for its own.
 */
export type IdAssignment = 'writer' | 'redis';

const APPEND_NUMBERED = `
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local n
if last[1] then
  n = tonumber(string.match(last[1][1], '^%d+'))
else
  local t = redis.call('TIME')
  n = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - 1
end
for i = 3, #ARGV do
  n = n + 1
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], string.format('%d-0', n), 'e', ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n
`;

type Entry = [id: string, fields: string[]];

interface Mirror {
  events: LoggedEvent[];
  /** The id before events[0]: a replay from further back is impossible (trimmed). */
  offset: number;
  lastId: number;
  closed: boolean;
  subscribers: Set<Subscriber>;
  /** Read from Redis (another instance writes it, or Redis numbers it); false: written here. */
  followed: boolean;
  expiry?: NodeJS.Timeout;
}

interface Queued {
  id: number | null;
  json: string;
  terminal: boolean;
}

export interface RedisEventLogOptions {
  /** The command connection (shared with other users of Redis; auto-pipelined). */
  redis: Redis;
  reader: RedisStreamReader;
  ids: IdAssignment;
  /** Events a stream (and a mirror) keeps; older ones are trimmed and replayed from the database. */
  maxEvents: number;
  log: FastifyBaseLogger;
}

export class RedisEventLog implements EventLog {
  private readonly mirrors = new Map<string, Mirror>();
  private readonly loading = new Map<string, Promise<void>>();
  private queue = new Map<string, Queued[]>();
  private expiries = new Map<string, number>();
  /** Keys this instance has written to since their last expiry (only a writer shortens a stream's life). */
  private readonly written = new Set<string>();
  private flushTimer?: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  private readonly markTimer: NodeJS.Timeout;

  constructor(private readonly o: RedisEventLogOptions) {
    o.redis.defineCommand('aiStoryAppendNumbered', { numberOfKeys: 1, lua: APPEND_NUMBERED });
    this.markTimer = setInterval(() => this.markFollowed([...this.mirrors].filter(([, m]) => m.subscribers.size > 0).map(([k]) => k)), FOLLOWED_MARK_MS / 2);
    this.markTimer.unref();
  }

  private streamKey = (key: string) => `events:${key}`;

  append(key: string, json: string, terminal = false): void {
    if (this.o.ids === 'writer') {
      const m = this.mirrors.get(key) ?? this.createMirror(key, [], 0, false);
      const event = { id: m.lastId + 1, json, terminal };
      this.add(m, event);
      this.enqueue(key, event);
    } else {
      // Numbered in Redis: this instance's subscribers get it through the reader, like everyone's.
      this.enqueue(key, { id: null, json, terminal });
    }
  }

  appendToken(key: string, content: string, tail: string) {
    this.append(key, tokenJson(content, tail));
  }

  private enqueue(key: string, item: Queued) {
    let q = this.queue.get(key);
    if (!q) this.queue.set(key, (q = []));
    q.push(item);
    this.written.add(key);
    this.flushTimer ??= setTimeout(() => void this.flush(), BATCH_MS);
  }

  /** Writes what is queued, in one pipeline; resolves once it (and any flush before it) is done. */
  flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const queue = this.queue;
    const expiries = this.expiries;
    if (!queue.size && !expiries.size) return this.flushing;
    this.queue = new Map();
    this.expiries = new Map();
    const pipeline = this.o.redis.pipeline();
    const maxLen = String(this.o.maxEvents);
    for (const [key, items] of queue) {
      const stream = this.streamKey(key);
      if (this.o.ids === 'writer') {
        for (const e of items) {
          const fields = e.terminal ? ['e', e.json, 't', '1'] : ['e', e.json];
          pipeline.xadd(stream, 'MAXLEN', '~', maxLen, `${e.id}-0`, ...fields);
        }
        pipeline.pexpire(stream, IDLE_TTL_MS);
      } else {
        (pipeline as unknown as { aiStoryAppendNumbered(...args: string[]): void }).aiStoryAppendNumbered(stream, maxLen, String(IDLE_TTL_MS), ...items.map((e) => e.json));
      }
    }
    for (const [key, ms] of expiries) pipeline.pexpire(this.streamKey(key), ms);
    // Pipelines on one connection run in order; chaining keeps `flush()` meaning "all written so far".
    const done = pipeline.exec().then(
      (results) => {
        const failed = results?.find(([err]) => err);
        if (failed) this.o.log.warn({ err: failed[0] }, 'writing run events to Redis failed');
      },
      (err: unknown) => this.o.log.warn({ err }, 'writing run events to Redis failed'),
    );
    this.flushing = this.flushing.then(() => done);
    return this.flushing;
  }

  since(key: string, afterId: number): LoggedEvent[] | null {
    const m = this.mirrors.get(key);
    if (!m) return null;
    if (afterId < m.offset) return null;
    return eventsAfter(m.events, afterId);
  }

  retained = (key: string) => this.mirrors.get(key)?.events ?? [];

  subscribe(key: string, subscriber: Subscriber) {
    const m = this.mirrors.get(key) ?? this.createMirror(key, [], 0, this.o.ids === 'redis');
    if (m.subscribers.size === 0) this.markFollowed([key]);
    m.subscribers.add(subscriber);
    return () => {
      m.subscribers.delete(subscriber);
    };
  }

  /**
   * Whether some instance follows `key`: what happens on one instance (a project's status changing)
   * is worth publishing to a stream only if someone, anywhere, reads it.
   */
  async followedAnywhere(key: string) {
    return this.subscriberCount(key) > 0 || (await this.o.redis.exists(`followed:${key}`).catch(() => 1)) > 0;
  }

  private markFollowed(keys: string[]) {
    if (!keys.length) return;
    const pipeline = this.o.redis.pipeline();
    for (const key of keys) pipeline.set(`followed:${key}`, '1', 'PX', FOLLOWED_MARK_MS);
    void pipeline.exec().catch(() => {});
  }

  lastId = (key: string) => this.mirrors.get(key)?.lastId ?? 0;
  subscriberCount = (key: string) => this.mirrors.get(key)?.subscribers.size ?? 0;
  isClosed = (key: string) => this.mirrors.get(key)?.closed ?? false;

  expire(key: string, delayMs: number) {
    this.expireMirror(key, delayMs);
    if (!this.written.delete(key)) return;
    // After the events still queued: the stream of a finished run leaves Redis too (the database has it).
    this.expiries.set(key, delayMs);
    this.flushTimer ??= setTimeout(() => void this.flush(), BATCH_MS);
  }

  private expireMirror(key: string, delayMs: number) {
    const m = this.mirrors.get(key);
    if (!m) return;
    clearTimeout(m.expiry);
    const idAtArming = m.lastId;
    m.expiry = setTimeout(() => {
      if (this.mirrors.get(key) !== m) return;
      if (m.subscribers.size > 0 || m.lastId !== idAtArming) return this.expireMirror(key, delayMs);
      this.mirrors.delete(key);
      if (m.followed) this.o.reader.unfollow(this.streamKey(key));
    }, delayMs);
    m.expiry.unref();
  }

  async attach(key: string, expectWrites: boolean): Promise<void> {
    if (this.mirrors.has(key)) return;
    let loading = this.loading.get(key);
    if (!loading) {
      loading = this.load(key, expectWrites).finally(() => this.loading.delete(key));
      this.loading.set(key, loading);
    }
    await loading;
    // A concurrent attach that found the stream empty and did not expect writes made no mirror.
    if (expectWrites && !this.mirrors.has(key)) await this.attach(key, true);
  }

  private async load(key: string, expectWrites: boolean) {
    const stream = this.streamKey(key);
    // The newest events, at most as many as a stream keeps.
    const entries = ((await this.o.redis.xrevrange(stream, '+', '-', 'COUNT', this.o.maxEvents)) as Entry[]).reverse();
    if (this.mirrors.has(key)) return; // written here meanwhile
    if (!entries.length && !expectWrites) return;
    const events = entries.map(toEvent);
    const m = this.createMirror(key, events, events.length ? events[0].id - 1 : 0, true);
    if (!m.closed) this.o.reader.follow(stream, entries.at(-1)?.[0] ?? '0-0', (read) => this.receive(key, read));
    this.expireMirror(key, FOLLOWED_MIRROR_MS);
  }

  /** Entries read from Redis: those not already in the mirror (written or loaded here) are added and sent. */
  private receive(key: string, entries: Entry[]) {
    const m = this.mirrors.get(key);
    if (!m) return;
    for (const entry of entries) {
      const event = toEvent(entry);
      if (event.id > m.lastId) this.add(m, event);
    }
    if (m.closed) this.o.reader.unfollow(this.streamKey(key));
  }

  private createMirror(key: string, events: LoggedEvent[], offset: number, followed: boolean): Mirror {
    const m: Mirror = { events, offset, lastId: events.at(-1)?.id ?? offset, closed: events.at(-1)?.terminal ?? false, subscribers: new Set(), followed };
    this.mirrors.set(key, m);
    return m;
  }

  private add(m: Mirror, event: LoggedEvent) {
    m.events.push(event);
    m.lastId = event.id;
    if (m.events.length > this.o.maxEvents) {
      m.events.splice(0, m.events.length - this.o.maxEvents);
      m.offset = m.events[0].id - 1;
    }
    if (event.terminal) m.closed = true;
    for (const s of m.subscribers) s(event);
  }

  /** Stops the timers; queued events are written first. */
  async close() {
    clearInterval(this.markTimer);
    await this.flush();
    for (const m of this.mirrors.values()) clearTimeout(m.expiry);
    this.mirrors.clear();
  }
}

function toEvent([id, fields]: Entry): LoggedEvent {
  let json = '';
  let terminal = false;
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] === 'e') json = fields[i + 1];
    else if (fields[i] === 't') terminal = fields[i + 1] === '1';
  }
  return { id: Number(id.slice(0, id.indexOf('-'))), json, terminal };
}

/**
 * Reads every followed stream of this instance with one blocking XREAD on a connection of its own.
 * A stream followed while the read is blocked is picked up at once: following also appends to this
 * reader's own wake stream, which every read includes (an entry written before the read starts is
 * returned by it, so no wake-up is lost, unlike with CLIENT UNBLOCK).
 */
export class RedisStreamReader {
  private readonly follows = new Map<string, { cursor: string; deliver: (entries: Entry[]) => void }>();
  private readonly wakeKey = `wake:${randomUUID()}`;
  private wakeCursor = '0-0';
  private idle?: () => void;
  private closed = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly blocking: Redis,
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly log: FastifyBaseLogger,
  ) {
    this.loop = this.run();
  }

  follow(stream: string, cursor: string, deliver: (entries: Entry[]) => void) {
    this.follows.set(stream, { cursor, deliver });
    if (this.idle) {
      this.idle();
      this.idle = undefined;
    } else {
      void this.redis
        .multi()
        .xadd(this.wakeKey, 'MAXLEN', '1', '*', 'w', '1')
        .pexpire(this.wakeKey, IDLE_TTL_MS)
        .exec()
        .catch(() => {});
    }
  }

  /** A stream no longer read (a key still in a blocked read is ignored when it answers). */
  unfollow(stream: string) {
    this.follows.delete(stream);
  }

  get followed() {
    return this.follows.size;
  }

  private async run() {
    while (!this.closed) {
      if (!this.follows.size) {
        await new Promise<void>((resolve) => (this.idle = resolve));
        continue;
      }
      const keys = [...this.follows.keys()];
      const cursors = keys.map((k) => this.follows.get(k)!.cursor);
      let reply: [string, Entry[]][] | null;
      try {
        reply = (await this.blocking.xread('COUNT', READ_COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', this.wakeKey, ...keys, this.wakeCursor, ...cursors)) as [string, Entry[]][] | null;
      } catch (err) {
        if (this.closed) return;
        this.log.warn({ err }, 'reading run events from Redis failed; retrying');
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      for (const [fullKey, entries] of reply ?? []) {
        const key = fullKey.slice(this.prefix.length);
        if (!entries.length) continue;
        if (key === this.wakeKey) {
          this.wakeCursor = entries.at(-1)![0];
          continue;
        }
        const f = this.follows.get(key);
        if (!f) continue;
        f.cursor = entries.at(-1)![0];
        try {
          f.deliver(entries);
        } catch (err) {
          this.log.error({ err }, 'delivering run events failed');
        }
      }
    }
  }

  async close() {
    this.closed = true;
    this.idle?.();
    this.blocking.disconnect();
    await this.loop.catch(() => {});
    await this.redis.del(this.wakeKey).catch(() => {});
  }
}
