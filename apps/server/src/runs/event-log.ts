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
  /** Adds an event; where its id is assigned by a shared store (Redis), subscribers get it once numbered. */
  append(key: string, json: string, terminal?: boolean): void;
  /** Events after `afterId`, or null when the log for `key` is gone (evicted or never existed here). */
  since(key: string, afterId: number): LoggedEvent[] | null;
  /** Follows new events; returns the unsubscribe function. */
  subscribe(key: string, subscriber: Subscriber): () => void;
  lastId(key: string): number;
  subscriberCount(key: string): number;
  isClosed(key: string): boolean;
  /**
   * Drops the log once it has gone `delayMs` without a subscriber or a new event (finished runs, and
   * projects nobody follows, stay replayable from memory for a while).
   */
  expire(key: string, delayMs: number): void;
  /**
   * Shared logs only (several instances): brings the log for `key` into this process and follows it,
   * so the synchronous reads above answer for it. `expectWrites`: follow it even while it is empty (a
   * run another instance has just started). The in-process log has nothing to fetch and omits it.
   */
  attach?(key: string, expectWrites: boolean): Promise<void>;
  /** Shared logs only: every event this instance holds of `key` (ids may start anywhere, e.g. at the clock). */
  retained?(key: string): LoggedEvent[];
  /** Shared logs only: whether any instance has a subscriber for `key` (within a minute or so). */
  followedAnywhere?(key: string): Promise<boolean>;
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

export interface EventLogOptions {
  maxEventsPerLog?: number;
  /**
   * The id of a new log's first event (1 by default). A log that outlives its expiry or the process
   * (a project's) starts from the clock instead, so a client holding an id of the log it replaces
   * cannot mistake the new ids for its own.
   */
  firstId?: () => number;
}

export class InMemoryEventLog implements EventLog {
  private readonly logs = new Map<string, Log>();
  private readonly maxEventsPerLog: number;
  private readonly firstId: () => number;

  constructor(opts: EventLogOptions = {}) {
    this.maxEventsPerLog = opts.maxEventsPerLog ?? 100_000;
    this.firstId = opts.firstId ?? (() => 1);
  }

  private log(key: string): Log {
    let log = this.logs.get(key);
    if (!log) {
      const first = this.firstId();
      this.logs.set(key, (log = { events: [], offset: first - 1, nextId: first, closed: false, subscribers: new Set() }));
    }
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
    const idAtArming = log.nextId;
    log.expiry = setTimeout(() => {
      if (this.logs.get(key) !== log) return;
      // Still followed, or written to since (a project's next run): keep it for another while.
      if (log.subscribers.size > 0 || log.nextId !== idAtArming) this.expire(key, delayMs);
      else this.logs.delete(key);
    }, delayMs);
    log.expiry.unref();
  }

  has = (key: string) => this.logs.has(key);
}
