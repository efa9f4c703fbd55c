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

/** Token events: a follower that leaves them out (`tokens: false`) needs none of them kept for its replay. */
export interface TokenChoice {
  tokens?: boolean;
}

/** A token event's JSON from its content and what follows the content (`}` or the run's id and stage). */
export const tokenJson = (content: string, tail: string) => `{"type":"token","content":${JSON.stringify(content)}${tail}`;

export interface EventLog {
  /**
   * Adds an event; where its id is assigned by a shared store (Redis), subscribers get it once numbered.
   * `rebuild`: how the same JSON is made again, for a log that keeps that instead of `json` (an event
   * made of strings held elsewhere anyway: a run's ending, whose text is the run's own).
   */
  append(key: string, json: string, terminal?: boolean, rebuild?: () => string): void;
  /** Adds a token event (the hot path: a log may keep its content alone and build its JSON, `tokenJson`, when read). */
  appendToken(key: string, content: string, tail: string): void;
  /**
   * Events after `afterId`, or null when the log for `key` is gone (evicted or never existed here) or
   * no longer holds all of them (with `tokens: false`, all but token events).
   */
  since(key: string, afterId: number, choice?: TokenChoice): LoggedEvent[] | null;
  /** Follows new events; returns the unsubscribe function. */
  subscribe(key: string, subscriber: Subscriber, choice?: TokenChoice): () => void;
  lastId(key: string): number;
  subscriberCount(key: string): number;
  isClosed(key: string): boolean;
  /**
   * Drops the log once it has gone `delayMs` without a subscriber or a new event (finished runs, and
   * projects nobody follows, stay replayable from memory for a while).
   */
  expire(key: string, delayMs: number): void;
  /**
   * A closed log whose text is saved elsewhere (a finished run's, in the database): each stretch of
   * token events becomes one, under the last one's id, and progress events go. A replay from inside a
   * merged stretch is refused (`since` answers null: it comes from the saved copy); from anywhere
   * else it stays exact. Logs shared between instances omit it. `text`: the run's whole text, kept
   * instead of a copy where a stretch spells all of it.
   */
  compact?(key: string, text?: string): void;
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

/** The events with an id past `afterId`. Ids increase but may jump (tokens not kept, a log started again from the clock): search, not index. */
export function eventsAfter(events: LoggedEvent[], afterId: number): LoggedEvent[] {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (events[mid].id <= afterId) lo = mid + 1;
    else hi = mid;
  }
  return events.slice(lo);
}

/**
 * A token event as a log keeps it: its content (the string the run's text is made of already), its
 * JSON built when it is read. Held for every token of every live run, it costs one small object,
 * where the JSON and its event would cost three times as much (tokens are most of the studio's
 * memory under load).
 */
class KeptToken implements LoggedEvent {
  constructor(
    readonly id: number,
    readonly content: string,
    readonly tail: string,
  ) {}

  get json() {
    return tokenJson(this.content, this.tail);
  }

  get terminal() {
    return false;
  }
}

/**
 * An event a log keeps as the means to build its JSON again: a finished run's `done` holds its text
 * twice over (full_text, output), which as JSON would be two more copies of a text the run's output
 * already holds, kept for every run finished in the last minute. Built again when read, it is kept
 * until the next garbage collection, so a replay that reads it several times builds it once.
 */
class RebuiltEvent implements LoggedEvent {
  private built?: WeakRef<{ json: string }>;

  constructor(
    readonly id: number,
    private readonly rebuild: () => string,
    readonly terminal: boolean,
  ) {}

  get json() {
    const kept = this.built?.deref();
    if (kept) return kept.json;
    const built = { json: this.rebuild() };
    this.built = new WeakRef(built);
    return built.json;
  }
}

interface Log {
  /** In id order; ids may jump where tokens were not kept. */
  events: LoggedEvent[];
  /** The last id whose event was dropped (trimmed, or dropped with the log): a replay from before it is impossible. */
  droppedThrough: number;
  /** The last id of a token not kept (nobody followed the tokens): a replay with tokens from before it is impossible. */
  tokensDroppedThrough: number;
  /** Stretches of tokens merged into their last one by `compact` ([first id, last id]): no replay starts inside one. */
  merged: [number, number][];
  nextId: number;
  closed: boolean;
  subscribers: Set<Subscriber>;
  /** The subscribers that want token events (the others never see them). */
  tokenSubscribers: Set<Subscriber>;
  /** Tokens are still kept until then after the last token follower left: its reconnect resumes exactly. */
  tokensKeptUntil: number;
  expiry?: NodeJS.Timeout;
}

/** How long a log that keeps tokens only while followed keeps them after its last token follower left (a reconnect's time). */
export const TOKENS_KEPT_AFTER_FOLLOWER_MS = 30_000;

export interface EventLogOptions {
  maxEventsPerLog?: number;
  /**
   * The id of a new log's first event (1 by default). A log that outlives its expiry or the process
   * (a project's) starts from the clock instead, so a client holding an id of the log it replaces
   * cannot mistake the new ids for its own.
   */
  firstId?: () => number;
  /**
   * Keep token events only while someone follows them (a project's log: the studio's pages follow
   * projects without tokens, and a client that comes back catches up from the run's text). By
   * default every token is kept, for an exact resume (a run's own log).
   */
  tokensWhileFollowed?: boolean;
}

export class InMemoryEventLog implements EventLog {
  private readonly logs = new Map<string, Log>();
  private readonly maxEventsPerLog: number;
  private readonly firstId: () => number;
  private readonly tokensWhileFollowed: boolean;

  constructor(opts: EventLogOptions = {}) {
    this.maxEventsPerLog = opts.maxEventsPerLog ?? 100_000;
    this.firstId = opts.firstId ?? (() => 1);
    this.tokensWhileFollowed = opts.tokensWhileFollowed ?? false;
  }

  private log(key: string): Log {
    let log = this.logs.get(key);
    if (!log) {
      const first = this.firstId();
      log = { events: [], droppedThrough: first - 1, tokensDroppedThrough: first - 1, nextId: first, closed: false, subscribers: new Set(), tokenSubscribers: new Set(), tokensKeptUntil: 0, merged: [] };
      this.logs.set(key, log);
    }
    return log;
  }

  append(key: string, json: string, terminal = false, rebuild?: () => string): LoggedEvent {
    const log = this.log(key);
    const event = { id: log.nextId++, json, terminal };
    this.keep(log, rebuild ? new RebuiltEvent(event.id, rebuild, terminal) : event);
    if (terminal) log.closed = true;
    for (const s of log.subscribers) s(event);
    return event;
  }

  appendToken(key: string, content: string, tail: string) {
    const log = this.log(key);
    const id = log.nextId++;
    // Nobody to keep it for or send it to (a project's log while nobody follows its tokens): just its id.
    if (this.tokensWhileFollowed && log.tokenSubscribers.size === 0 && Date.now() > log.tokensKeptUntil) {
      log.tokensDroppedThrough = id;
      return;
    }
    const event = new KeptToken(id, content, tail);
    this.keep(log, event);
    for (const s of log.tokenSubscribers) s(event);
  }

  private keep(log: Log, event: LoggedEvent) {
    log.events.push(event);
    if (log.events.length > this.maxEventsPerLog) {
      const dropped = log.events.splice(0, log.events.length - this.maxEventsPerLog);
      log.droppedThrough = dropped.at(-1)!.id;
    }
  }

  since(key: string, afterId: number, choice: TokenChoice = {}): LoggedEvent[] | null {
    const log = this.logs.get(key);
    if (!log) return null;
    if (afterId < log.droppedThrough) return null; // the part the client needs was dropped
    if (choice.tokens !== false && afterId < log.tokensDroppedThrough) return null;
    if (log.merged.some(([first, last]) => afterId >= first && afterId < last)) return null;
    return eventsAfter(log.events, afterId);
  }

  subscribe(key: string, subscriber: Subscriber, choice: TokenChoice = {}) {
    const log = this.log(key);
    log.subscribers.add(subscriber);
    if (choice.tokens !== false) log.tokenSubscribers.add(subscriber);
    return () => {
      log.subscribers.delete(subscriber);
      if (log.tokenSubscribers.delete(subscriber) && log.tokenSubscribers.size === 0) log.tokensKeptUntil = Date.now() + TOKENS_KEPT_AFTER_FOLLOWER_MS;
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

  compact(key: string, text?: string) {
    const log = this.logs.get(key);
    if (!log?.closed) return;
    const kept: LoggedEvent[] = [];
    let stretch: KeptToken[] = [];
    const mergeStretch = () => {
      if (stretch.length > 1) {
        const [first, last] = [stretch[0], stretch.at(-1)!];
        const content = stretch.map((t) => t.content).join('');
        kept.push(new KeptToken(last.id, content === text ? text : content, last.tail));
        log.merged.push([first.id, last.id]);
      } else kept.push(...stretch);
      stretch = [];
    };
    for (const event of log.events) {
      if (event instanceof KeptToken) stretch.push(event);
      else if (event instanceof RebuiltEvent || !event.json.startsWith('{"type":"progress"')) {
        mergeStretch();
        kept.push(event);
      }
    }
    mergeStretch();
    log.events = kept;
  }

  has = (key: string) => this.logs.has(key);
}
