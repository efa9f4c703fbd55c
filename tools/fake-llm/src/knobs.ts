/**
 * Per-request behaviour of the simulated upstream. A knob can come from three places, the later
 * winning: the server's defaults (CLI flags / options), the model name's query string
 * (`fake-model?tps=20&tokens=500&quirk=cut_mid_stream` — the only thing most clients let a user set)
 * and `x-fake-<knob>` request headers (`x-fake-tps: 20`, `x-fake-quirk: reasoning,split_utf8`).
 * Quirks are the union of all three.
 */

export const QUIRKS = [
  /** A role-only first chunk, as OpenAI sends; always on, listed so it can be named. */
  'role_first',
  /** Chunks with `content: ""` interleaved with the real ones. */
  'empty_chunks',
  /** A final `choices: []` usage chunk even when `stream_options.include_usage` was not asked. */
  'usage_chunk',
  /** No usage chunk even when asked (many compatible servers ignore `stream_options`). */
  'no_usage',
  /** DeepSeek-style `reasoning_content` deltas before the answer. */
  'reasoning',
  /** Every event written in two network writes cut inside a multi-byte UTF-8 character. */
  'split_utf8',
  /** Several events per network write. */
  'coalesce',
  /** Every event written in two network writes cut in the middle of its line. */
  'split_event',
  /** `: keep-alive` comment lines before and between events. */
  'keepalive',
  /** The body ends cleanly but without `[DONE]` and without a `finish_reason`. */
  'no_done',
  /** An `{"error":{…}}` object inside the stream after `after` tokens, then the end. */
  'stream_error',
  /** 429 with `Retry-After` (seconds, knob `retry_after`, default 1) and OpenAI's JSON error. */
  'http_429',
  'http_500',
  'http_503',
  /** The socket is destroyed after `after` tokens. */
  'cut_mid_stream',
  /** Headers (and `after` tokens) then silence until the client gives up. */
  'stall',
  /** 401 invalid_api_key, as OpenAI answers a wrong key. */
  'bad_key',
  /** 404 model_not_found. */
  'model_not_found',
  /** 200 with an HTML page: a URL that is not an OpenAI-compatible API. */
  'not_openai',
  /** One JSON completion even when `stream: true` was asked (some proxies and old servers). */
  'ignore_stream',
  /** Each content token starts with its send time, `\u0002<epoch ms>\u0003`, so a client behind a relay can measure delivery delay. */
  'stamp',
  /** JSON answers wrapped in ```json fences, with prose after them. */
  'json_fenced',
  /** JSON answers with unquoted keys and trailing commas (repairable). */
  'json_broken',
  /** JSON answers that no repair can turn into the requested shape. */
  'json_hopeless',
] as const;
export type Quirk = (typeof QUIRKS)[number];

/** Quirks that make a request fail; `fail_times=N` limits them to the first N identical requests. */
export const FAILURE_QUIRKS: ReadonlySet<Quirk> = new Set<Quirk>([
  'http_429',
  'http_500',
  'http_503',
  'cut_mid_stream',
  'stall',
  'stream_error',
  'no_done',
  'bad_key',
  'model_not_found',
  'not_openai',
]);

export interface Knobs {
  /** Milliseconds from the request to the first token. */
  ttft_ms: number;
  /** Tokens per second after the first. */
  tps: number;
  /** Answer length in tokens (story text; JSON answers have the length of their JSON). */
  tokens: number;
  /** Reasoning tokens before the answer, with the `reasoning` quirk. */
  reasoning_tokens: number;
  /** Tokens sent before `cut_mid_stream`, `stream_error` or `stall` strike. */
  after: number;
  /** How many identical requests (same model string and messages) a failure quirk fails; then it is off. */
  fail_times: number;
  /** Seconds in the `Retry-After` header of `http_429`. */
  retry_after: number;
  quirks: ReadonlySet<Quirk>;
}

export const DEFAULT_KNOBS: Knobs = {
  ttft_ms: 300,
  tps: 40,
  tokens: 300,
  reasoning_tokens: 24,
  after: 5,
  fail_times: Number.POSITIVE_INFINITY,
  retry_after: 1,
  quirks: new Set<Quirk>(),
};

export type KnobInput = Partial<Omit<Knobs, 'quirks'>> & { quirks?: Iterable<Quirk> | string };

export class KnobError extends Error {}

const NUMERIC: Record<string, keyof Omit<Knobs, 'quirks'>> = {
  ttft_ms: 'ttft_ms',
  ttft: 'ttft_ms',
  tps: 'tps',
  tokens: 'tokens',
  reasoning_tokens: 'reasoning_tokens',
  after: 'after',
  fail_times: 'fail_times',
  retry_after: 'retry_after',
};

function parseQuirks(value: string, into: Set<Quirk>): void {
  for (const raw of value.split(',')) {
    const q = raw.trim();
    if (!q) continue;
    if (!(QUIRKS as readonly string[]).includes(q)) throw new KnobError(`Unknown fake quirk "${q}"; known: ${QUIRKS.join(', ')}`);
    into.add(q as Quirk);
  }
}

function setNumeric(k: Knobs, name: string, value: string): boolean {
  const key = NUMERIC[name];
  if (!key) return false;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new KnobError(`Invalid fake knob ${name}=${value}: expected a number >= 0`);
  if (key === 'tps' && n === 0) throw new KnobError('Invalid fake knob tps=0: expected a number > 0');
  k[key] = key === 'tps' || key === 'ttft_ms' ? n : Math.floor(n);
  return true;
}

/** Merges options (numbers or strings) into knobs; throws KnobError on a bad value. */
export function mergeKnobs(base: Knobs, input: KnobInput | undefined): Knobs {
  if (!input) return base;
  const k: Knobs = { ...base, quirks: new Set(base.quirks) };
  for (const [name, value] of Object.entries(input)) {
    if (value === undefined) continue;
    if (name === 'quirks') {
      const set = k.quirks as Set<Quirk>;
      if (typeof value === 'string') parseQuirks(value, set);
      else for (const q of value as Iterable<Quirk>) parseQuirks(q, set);
    } else if (!setNumeric(k, name, String(value))) {
      throw new KnobError(`Unknown fake knob "${name}"`);
    }
  }
  return k;
}

export type HeaderBag = Record<string, string | string[] | undefined>;

/**
 * Splits `fake-model?tps=20&quirk=a,b` into the model's name and the knobs of its query, then applies
 * the `x-fake-*` headers. `quirk` and `quirks` are both accepted.
 */
export function resolveKnobs(defaults: Knobs, model: string, headers?: HeaderBag): { model: string; knobs: Knobs } {
  const q = model.indexOf('?');
  const name = q < 0 ? model : model.slice(0, q);
  // Like deepseek-reasoner, a `*-reasoner` model thinks aloud before it answers.
  const reasoner = name.endsWith('-reasoner');
  if (q < 0 && !headers && !reasoner) return { model: name, knobs: defaults };
  const k: Knobs = { ...defaults, quirks: new Set(defaults.quirks) };
  if (reasoner) (k.quirks as Set<Quirk>).add('reasoning');
  const apply = (key: string, value: string) => {
    if (key === 'quirk' || key === 'quirks') parseQuirks(value, k.quirks as Set<Quirk>);
    else if (!setNumeric(k, key, value)) throw new KnobError(`Unknown fake knob "${key}"`);
  };
  if (q >= 0) for (const [key, value] of new URLSearchParams(model.slice(q + 1))) apply(key, value);
  if (headers) {
    for (const [h, v] of Object.entries(headers)) {
      if (v === undefined || !h.toLowerCase().startsWith('x-fake-')) continue;
      apply(h.slice(7).toLowerCase().replaceAll('-', '_'), Array.isArray(v) ? v.join(',') : v);
    }
  }
  return { model: name, knobs: k };
}
