/**
 * The OpenAI-compatible HTTP surface: `POST {basePath}/chat/completions` (streamed or not) and
 * `GET {basePath}/models`, answered the way api.openai.com answers — including its error bodies —
 * plus the misbehaviours of other compatible servers, on request (see knobs.ts).
 *
 * Each stream is one small state machine driven by one timer at a time, and every chunk is built by
 * concatenating strings encoded once per stream, so a thousand concurrent streams stay cheap.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { planAnswer, type Answer, type ChatRequest } from './answer.ts';
import { DEFAULT_KNOBS, FAILURE_QUIRKS, KnobError, mergeKnobs, type KnobInput, type Knobs, type Quirk } from './knobs.ts';
import { hash32, type Token } from './text.ts';

export interface FakeLlmOptions {
  /** Where the API lives, e.g. `/v1` (default) or `/fake-llm/v1` when mounted inside another server. */
  basePath?: string;
  /** When set, requests must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Defaults for every request (a request's model name and headers override them). */
  defaults?: KnobInput;
  /** Model ids listed by `GET /models`. Any model name is accepted by chat completions. */
  models?: string[];
  /** Called once per chat completion request when its response is over, however it ended. */
  onRequestEnd?: (info: RequestEndInfo) => void;
}

export interface RequestEndInfo {
  model: string;
  status: number;
  stream: boolean;
  /** `client_closed`: the client went away before the answer was complete (cancel, timeout). */
  outcome: 'completed' | 'client_closed' | 'server_cut';
  /** Text-bearing chunks sent (reasoning and content). */
  chunks_sent: number;
}

export interface FakeLlmStats {
  requests: number;
  active: number;
  completed: number;
  client_closed: number;
  server_cut: number;
}

export type FakeLlmHandler = ((req: IncomingMessage, res: ServerResponse, body?: unknown) => void) & {
  readonly stats: FakeLlmStats;
  readonly defaults: Knobs;
  readonly basePath: string;
};

const MAX_BODY = 20 * 1024 * 1024;
const SPLIT_GAP_MS = 1;
const COALESCE = 3;
const KEEPALIVE = ': keep-alive\n\n';
const DONE = 'data: [DONE]\n\n';
const KEEPALIVE_EVERY_MS = 250;

export function createFakeLlmHandler(options: FakeLlmOptions = {}): FakeLlmHandler {
  const basePath = (options.basePath ?? '/v1').replace(/\/+$/, '');
  const defaults = mergeKnobs(DEFAULT_KNOBS, options.defaults);
  const models = options.models ?? ['fake-model', 'fake-model-reasoner'];
  const stats: FakeLlmStats = { requests: 0, active: 0, completed: 0, client_closed: 0, server_cut: 0 };
  // How many times each (model string, messages) pair was seen, for `fail_times`. Bounded: a long-lived
  // demo server must not grow without limit; forgetting old pairs only re-arms their failures.
  const seen = new Map<number, number>();
  let nextId = 0;

  const handler = (req: IncomingMessage, res: ServerResponse, body?: unknown): void => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = (q < 0 ? url : url.slice(0, q)).replace(/\/+$/, '');
    const sub = path.startsWith(basePath + '/') ? path.slice(basePath.length) : null;
    const method = req.method ?? 'GET';

    if (options.apiKey !== undefined && sub !== null) {
      const auth = req.headers.authorization;
      if (!auth) return sendError(res, 401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", 'invalid_request_error', null);
      const key = auth.replace(/^Bearer\s+/i, '');
      if (key !== options.apiKey) return sendError(res, 401, `Incorrect API key provided: ${maskKey(key)}. You can find your API key at https://platform.openai.com/account/api-keys.`, 'invalid_request_error', 'invalid_api_key');
    }
    if (sub === '/models' && method === 'GET') {
      return sendJson(res, 200, {
        object: 'list',
        data: models.map((id) => ({ id, object: 'model', created: 1_700_000_000, owned_by: 'ai-story' })),
      });
    }
    if (sub !== '/chat/completions' || method !== 'POST') {
      return sendError(res, 404, `Invalid URL (${method} ${path || '/'})`, 'invalid_request_error', null);
    }
    if (body !== undefined) return chat(req, res, body);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        sendError(res, 413, 'Request too large', 'invalid_request_error', null);
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      if (size <= MAX_BODY) chat(req, res, Buffer.concat(chunks));
    });
  };

  function chat(req: IncomingMessage, res: ServerResponse, raw: unknown): void {
    let request: ChatRequest;
    try {
      request = (Buffer.isBuffer(raw) || typeof raw === 'string' ? JSON.parse(raw.toString()) : raw) as ChatRequest;
    } catch {
      return sendError(res, 400, 'We could not parse the JSON body of your request. (HINT: This likely means you aren\'t using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)', 'invalid_request_error', null);
    }
    if (!request || typeof request.model !== 'string' || !request.model) {
      return sendError(res, 400, 'you must provide a model parameter', 'invalid_request_error', null);
    }
    if (!Array.isArray(request.messages) || request.messages.length === 0) {
      return sendError(res, 400, "Missing required parameter: 'messages'.", 'invalid_request_error', 'missing_required_parameter', 'messages');
    }
    let answer: Answer;
    try {
      answer = planAnswer(request, defaults, req.headers);
    } catch (e) {
      if (e instanceof KnobError) return sendError(res, 400, e.message, 'invalid_request_error', 'invalid_fake_knob');
      // A malformed request must not take down the process that hosts the handler.
      return sendError(res, 400, `Invalid request: ${(e as Error).message}`, 'invalid_request_error', null);
    }
    const knobs = answer.knobs;
    let quirks = knobs.quirks;
    if (Number.isFinite(knobs.fail_times) && [...quirks].some((x) => FAILURE_QUIRKS.has(x))) {
      const key = hash32(JSON.stringify(request.messages), hash32(request.model));
      const count = seen.get(key) ?? 0;
      if (seen.size >= 10_000) seen.clear();
      seen.set(key, count + 1);
      if (count >= knobs.fail_times) quirks = new Set([...quirks].filter((x) => !FAILURE_QUIRKS.has(x)));
    }

    stats.requests++;
    const fail = (status: number, message: string, type: string, code: string | null) => {
      sendError(res, status, message, type, code);
      options.onRequestEnd?.({ model: answer.model, status, stream: request.stream === true, outcome: 'completed', chunks_sent: 0 });
    };
    if (quirks.has('bad_key')) {
      return fail(401, `Incorrect API key provided: ${maskKey((req.headers.authorization ?? '').replace(/^Bearer\s+/i, ''))}. You can find your API key at https://platform.openai.com/account/api-keys.`, 'invalid_request_error', 'invalid_api_key');
    }
    if (quirks.has('model_not_found')) {
      return fail(404, `The model \`${answer.model}\` does not exist or you do not have access to it.`, 'invalid_request_error', 'model_not_found');
    }
    if (quirks.has('http_429')) {
      res.setHeader('retry-after', String(knobs.retry_after));
      return fail(429, `Rate limit reached for ${answer.model} in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in ${knobs.retry_after}s.`, 'requests', 'rate_limit_exceeded');
    }
    if (quirks.has('http_500')) {
      return fail(500, 'The server had an error while processing your request. Sorry about that!', 'server_error', null);
    }
    if (quirks.has('http_503')) {
      return fail(503, 'The engine is currently overloaded, please try again later.', 'server_error', null);
    }
    if (quirks.has('not_openai')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html>\n<html><head><title>Welcome</title></head><body><h1>It works!</h1><p>This is a web page, not an API.</p></body></html>\n');
      return;
    }

    stats.active++;
    const id = 'chatcmpl-fake' + (nextId++).toString(36) + Date.now().toString(36);
    const stream = request.stream === true && !quirks.has('ignore_stream');
    let ended = false;
    let chunksSent = 0;
    const finish = (outcome: RequestEndInfo['outcome']) => {
      if (ended) return;
      ended = true;
      stats.active--;
      if (outcome === 'completed') stats.completed++;
      else if (outcome === 'client_closed') stats.client_closed++;
      else stats.server_cut++;
      options.onRequestEnd?.({ model: answer.model, status: res.statusCode, stream, outcome, chunks_sent: chunksSent });
    };
    let run: StreamRun | null = null;
    let timer: NodeJS.Timeout | undefined;
    res.on('close', () => {
      if (run) run.stop();
      clearTimeout(timer);
      if (!ended) finish(res.writableFinished ? 'completed' : 'client_closed');
    });

    if (stream) {
      run = new StreamRun(res, answer, quirks, id, request.stream_options?.include_usage === true, (n) => (chunksSent = n), finish);
      run.begin();
      return;
    }

    // Not streamed: the whole answer after the time it would have taken to stream it.
    if (quirks.has('stall')) return;
    const delay = knobs.ttft_ms + (answer.reasoning.length + answer.content.length) * (1000 / knobs.tps);
    timer = setTimeout(() => {
      if (quirks.has('cut_mid_stream')) {
        finish('server_cut');
        res.socket?.destroy();
        return;
      }
      if (quirks.has('stream_error')) return sendError(res, 500, 'The server had an error while processing your request. Sorry about that!', 'server_error', null);
      chunksSent = answer.reasoning.length + answer.content.length;
      const text = answer.content.map((t) => t.text).join('');
      const message: Record<string, unknown> = { role: 'assistant', content: text, refusal: null };
      if (answer.reasoning.length) message.reasoning_content = answer.reasoning.map((t) => t.text).join('');
      sendJson(res, 200, {
        id,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: answer.model,
        choices: [{ index: 0, message, logprobs: null, finish_reason: answer.finish_reason }],
        usage: usageOf(answer),
        system_fingerprint: 'fp_fake',
      });
    }, delay);
  }

  return Object.assign(handler, { stats, defaults, basePath });
}

function usageOf(a: Answer) {
  const completion = a.reasoning.length + a.content.length;
  return {
    prompt_tokens: a.prompt_tokens,
    completion_tokens: completion,
    total_tokens: a.prompt_tokens + completion,
    completion_tokens_details: { reasoning_tokens: a.reasoning.length },
  };
}

/** OpenAI shows the first and last characters of a wrong key and stars in between. */
function maskKey(key: string): string {
  if (key.length <= 8) return '*'.repeat(key.length);
  return key.slice(0, 3) + '*'.repeat(Math.min(key.length - 7, 20)) + key.slice(-4);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-request-id': 'req_fake' });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, message: string, type: string, code: string | null, param: string | null = null): void {
  sendJson(res, status, { error: { message, type, param, code } });
}

const now = () => performance.now();
const epochMs = () => performance.timeOrigin + performance.now();

/**
 * One streamed answer. Token k (reasoning first, then content) is due at `first + k / tps`; each
 * wake-up writes everything due (so a late timer catches up instead of drifting) and arms one timer
 * for the next due moment. Writing pauses while the socket buffer is full, as a real server would.
 */
class StreamRun {
  private readonly head: string;
  private readonly tail: string;
  private readonly tokens: Token[];
  private readonly reasoningCount: number;
  private readonly first: number;
  private readonly interval: number;
  private readonly created: number;
  private readonly strike: Quirk | null;
  /** Index of the token before which the failure quirk strikes; -1: none. */
  private readonly strikeAt: number;
  private readonly q: {
    empty: boolean;
    keepalive: boolean;
    coalesce: boolean;
    splitUtf8: boolean;
    splitEvent: boolean;
    usage: boolean;
    noDone: boolean;
    stamp: boolean;
  };
  private next = 0;
  private pending: Buffer | string | null = null;
  private held: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private waitingDrain = false;
  private lastKeepalive = 0;

  constructor(
    private readonly res: ServerResponse,
    private readonly answer: Answer,
    quirks: ReadonlySet<Quirk>,
    private readonly id: string,
    private readonly includeUsage: boolean,
    private readonly onSent: (chunks: number) => void,
    private readonly onEnd: (outcome: RequestEndInfo['outcome']) => void,
  ) {
    this.created = Math.floor(Date.now() / 1000);
    this.head = `data: {"id":"${id}","object":"chat.completion.chunk","created":${this.created},"model":${JSON.stringify(answer.model)},"system_fingerprint":"fp_fake","choices":[{"index":0,"delta":{`;
    // With include_usage OpenAI puts `"usage":null` on every chunk before the usage chunk.
    this.tail = `},"logprobs":null,"finish_reason":null}]${includeUsage ? ',"usage":null' : ''}`;
    this.tokens = [...answer.reasoning, ...answer.content];
    this.reasoningCount = answer.reasoning.length;
    const knobs = answer.knobs;
    this.first = now() + knobs.ttft_ms;
    this.interval = 1000 / knobs.tps;
    this.strike = quirks.has('cut_mid_stream') ? 'cut_mid_stream' : quirks.has('stream_error') ? 'stream_error' : quirks.has('stall') ? 'stall' : null;
    this.strikeAt = this.strike ? Math.min(knobs.after, this.tokens.length) : -1;
    this.q = {
      empty: quirks.has('empty_chunks'),
      keepalive: quirks.has('keepalive'),
      coalesce: quirks.has('coalesce'),
      splitUtf8: quirks.has('split_utf8'),
      splitEvent: quirks.has('split_event'),
      usage: (includeUsage || quirks.has('usage_chunk')) && !quirks.has('no_usage'),
      noDone: quirks.has('no_done'),
      stamp: quirks.has('stamp'),
    };
  }

  begin(): void {
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-request-id': 'req_' + this.id,
    });
    if (this.strikeAt === 0 && this.strike === 'stall') {
      this.res.flushHeaders();
      return;
    }
    if (this.q.keepalive) {
      this.res.write(KEEPALIVE);
      this.lastKeepalive = now();
    } else this.res.flushHeaders();
    this.res.on('drain', () => {
      if (this.waitingDrain) {
        this.waitingDrain = false;
        this.step();
      }
    });
    this.arm(this.first - now());
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private arm(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(this.step, ms > 0 ? ms : 0);
  }

  private readonly step = (): void => {
    this.timer = undefined;
    if (this.stopped) return;
    const t = now();
    if (t < this.first) {
      // Still "thinking": only keep-alive comments, if asked for.
      if (this.q.keepalive && t - this.lastKeepalive >= KEEPALIVE_EVERY_MS) {
        this.lastKeepalive = t;
        this.res.write(KEEPALIVE);
      }
      this.arm(Math.min(this.first - t, this.q.keepalive ? KEEPALIVE_EVERY_MS : Infinity));
      return;
    }
    const split = this.q.splitUtf8 || this.q.splitEvent;
    const ts = epochMs();
    let out = '';
    let last = false;
    // In split modes one event per wake-up, so every network write ends inside an event.
    const maxEvents = split ? 1 : Infinity;
    let events = 0;
    while (events < maxEvents && this.dueAt(this.next) <= t) {
      const k = this.next;
      if (k === this.strikeAt) {
        last = true;
        break;
      }
      if (k === this.tokens.length) {
        out += this.ending();
        last = true;
        break;
      }
      out += this.event(k, ts);
      this.next++;
      events++;
    }
    this.onSent(this.next);
    if (out) this.emit(out, last);
    else if (last || this.pending !== null || this.held.length) this.flushAll();
    if (last) return this.finishOff();
    if (this.waitingDrain) return;
    const due = this.dueAt(this.next) - now();
    this.arm(this.pending !== null ? Math.min(SPLIT_GAP_MS, due) : due);
  };

  /** Token k is due at `first + k·interval`; the ending right after the last token. */
  private dueAt(k: number): number {
    return this.first + Math.max(0, Math.min(k, this.tokens.length - 1)) * this.interval;
  }

  private roleChunk(): string {
    return this.head + '"role":"assistant","content":"","refusal":null' + this.tail + '}\n\n';
  }

  private event(k: number, ts: number): string {
    const tok = this.tokens[k];
    let s = k === 0 ? this.roleChunk() : '';
    if (this.q.keepalive && k % 4 === 3) s += KEEPALIVE;
    const field = k < this.reasoningCount ? '"content":null,"reasoning_content":' : '"content":';
    const content = this.q.stamp && k >= this.reasoningCount ? '"\\u0002' + ts + '\\u0003' + tok.json.slice(1) : tok.json;
    s += this.head + field + content + this.tail + ',"x_seq":' + k + ',"x_ts":' + ts + '}\n\n';
    if (this.q.empty && k % 2 === 1) s += this.head + '"content":""' + this.tail + '}\n\n';
    return s;
  }

  private ending(): string {
    let s = this.tokens.length === 0 ? this.roleChunk() : '';
    if (this.q.noDone) return s;
    s += this.head + `},"logprobs":null,"finish_reason":"${this.answer.finish_reason}"}]${this.includeUsage ? ',"usage":null' : ''}}\n\n`;
    if (this.q.usage) {
      s += `data: {"id":"${this.id}","object":"chat.completion.chunk","created":${this.created},"model":${JSON.stringify(this.answer.model)},"system_fingerprint":"fp_fake","choices":[],"usage":${JSON.stringify(usageOf(this.answer))}}\n\n`;
    }
    return s + DONE;
  }

  /** Writes `out` as the quirks want it cut; `last` flushes whatever is held back. */
  private emit(out: string, last: boolean): void {
    if (this.q.coalesce) {
      this.held.push(out);
      if (this.held.length >= COALESCE || last) this.write(this.held.splice(0).join(''));
      return;
    }
    if (this.q.splitUtf8) {
      const buf = Buffer.from(out);
      const cut = utf8Cut(buf);
      const a = buf.subarray(0, cut);
      this.write(this.pending ? Buffer.concat([this.pending as Buffer, a]) : a);
      this.pending = buf.subarray(cut);
    } else if (this.q.splitEvent) {
      let cut = out.length >> 1;
      const c = out.charCodeAt(cut);
      if (c >= 0xdc00 && c <= 0xdfff) cut++; // never between the halves of a surrogate pair
      this.write((this.pending ?? '') + out.slice(0, cut));
      this.pending = out.slice(cut);
    } else {
      this.write(out);
    }
    if (last) this.flushAll();
  }

  private flushAll(): void {
    if (this.held.length) this.write(this.held.splice(0).join(''));
    if (this.pending !== null) {
      const p = this.pending;
      this.pending = null;
      this.write(p);
    }
  }

  private write(chunk: string | Buffer): void {
    if (chunk.length && !this.res.write(chunk)) this.waitingDrain = true;
  }

  private finishOff(): void {
    this.stopped = true;
    const res = this.res;
    switch (this.strike !== null && this.next === this.strikeAt ? this.strike : null) {
      case 'stall':
        return; // silence; the 'close' handler accounts for it when the client gives up
      case 'cut_mid_stream':
        // Destroy once what was written has left, so the client sees the tokens, then the cut.
        res.write('', () => {
          this.onEnd('server_cut');
          res.socket?.destroy();
        });
        return;
      case 'stream_error':
        res.end('data: {"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":"server_error"}}\n\n');
        return;
      default:
        res.end();
    }
  }
}

/** A cut inside the first multi-byte character (there is always one in our text); else the middle. */
function utf8Cut(buf: Buffer): number {
  for (let i = 1; i < buf.length; i++) if ((buf[i] & 0xc0) === 0x80) return i;
  return buf.length >> 1;
}
