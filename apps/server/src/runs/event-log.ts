/**
 * The event log and fan-out seam (DESIGN §4): every event of a stream gets a strictly increasing id,
 * late joiners and reconnects replay from any id, and any number of subscribers follow the tail.
 * This in-process implementation keeps logs in memory; a Redis Streams implementation of the same
 * interface carries events between instances in scale-out mode.
 */
export interface LoggedEvent {
  id: number;
  /** The event as JSON, serialised once however many subscribers receive it. */
  json: string;
  terminal: boolean;
}

export type Subscriber = (event: LoggedEvent) => void;

export interface EventLog {
  append(key: string, json: string, terminal?: boolean): LoggedEvent;
  /** Events after `afterId`, or null when the log for `key` is gone (evicted or never existed here). */
  since(key: string, afterId: number): LoggedEvent[] | null;
  /** Follows new events; returns the unsubscribe function. */
  subscribe(key: string, subscriber: Subscriber): () => void;
  lastId(key: string): number;
  subscriberCount(key: string): number;
  isClosed(key: string): boolean;
  /** Drops the log after `delayMs` (finished runs stay replayable from memory for a while). */
  expire(key: string, delayMs: number): void;
}

interface Log {
  events: LoggedEvent[];
  /** Id of events[0] minus one: trimmed logs still number their events consistently. */
  offset: number;
  nextId: number;
  closed: boolean;
  subscribers: Set<Subscriber>;
  expiry?: NodeJS.Timeout;
}

export class InMemoryEventLog implements EventLog {
  private readonly logs = new Map<string, Log>();

  constructor(private readonly maxEventsPerLog = 100_000) {}

  private log(key: string): Log {
    let log = this.logs.get(key);
    if (!log) this.logs.set(key, (log = { events: [], offset: 0, nextId: 1, closed: false, subscribers: new Set() }));
    return log;
  }

  append(key: string, json: string, terminal = false): LoggedEvent {
    const log = this.log(key);
    const event = { id: log.nextId++, json, terminal };
    log.events.push(event);
    if (log.events.length > this.maxEventsPerLog) {
      const drop = log.events.length - this.maxEventsPerLog;
      log.events.splice(0, drop);
      log.offset += drop;
    }
    if (terminal) log.closed = true;
    for (const s of log.subscribers) s(event);
    return event;
  }

  since(key: string, afterId: number): LoggedEvent[] | null {
    const log = this.logs.get(key);
    if (!log) return null;
    if (afterId < log.offset) return null; // the part the client needs was trimmed
    return log.events.slice(Math.max(0, afterId - log.offset));
  }

  subscribe(key: string, subscriber: Subscriber) {
    const log = this.log(key);
    log.subscribers.add(subscriber);
    return () => {
      log.subscribers.delete(subscriber);
    };
  }

  lastId = (key: string) => (this.logs.get(key)?.nextId ?? 1) - 1;
  subscriberCount = (key: string) => this.logs.get(key)?.subscribers.size ?? 0;
  isClosed = (key: string) => this.logs.get(key)?.closed ?? false;

  expire(key: string, delayMs: number) {
    const log = this.logs.get(key);
    if (!log) return;
    clearTimeout(log.expiry);
    log.expiry = setTimeout(() => {
      if (log.subscribers.size === 0) this.logs.delete(key);
      else this.expire(key, delayMs);
    }, delayMs);
    log.expiry.unref();
  }

  has = (key: string) => this.logs.has(key);
}
