/**
 * What the simulated model answers to a request: the same function serves the HTTP handler and the
 * tests (`expectedText`), so a test knows the exact output without a second implementation.
 */
import { buildJsonAnswer, contentText, lastUserText, renderJson, storyPart, type ChatMessage, type JsonVariant } from './json-output.ts';
import { DEFAULT_KNOBS, mergeKnobs, resolveKnobs, type HeaderBag, type KnobInput, type Knobs } from './knobs.ts';
import { hash32, reasoningTokens, splitSentences, storyTokens, tokenize, topicWords, type Token } from './text.ts';

/** The parts of an OpenAI chat completion request the simulated model looks at. */
export interface ChatRequest {
  model: string;
  messages: readonly ChatMessage[];
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean | null } | null;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  response_format?: { type: string } | null;
  [key: string]: unknown;
}

export interface Answer {
  /** The model's name without its knob query. */
  model: string;
  knobs: Knobs;
  reasoning: Token[];
  content: Token[];
  finish_reason: 'stop' | 'length';
  prompt_tokens: number;
}

export interface ExpectOptions {
  /** `x-fake-*` headers sent with the request. */
  headers?: HeaderBag;
  /** The server's defaults, when it was started with some (CLI flags or `defaults`). */
  defaults?: KnobInput;
}

export function seedOf(messages: readonly ChatMessage[], model: string): number {
  return hash32(lastUserText(messages) + '\u0000' + model);
}

/** Prompt size as a tokenizer would roughly count it: a Han character ≈ 1 token, 4 other characters ≈ 1. */
function countPromptTokens(messages: readonly ChatMessage[]): number {
  let n = 0;
  for (const m of messages) {
    const text = contentText(m.content);
    let han = 0;
    for (const ch of text) if (ch.charCodeAt(0) >= 0x2e80) han++;
    n += 4 + han + Math.ceil((text.length - han) / 4);
  }
  return n;
}

export function planAnswer(req: ChatRequest, defaults: Knobs, headers?: HeaderBag): Answer {
  const { model, knobs } = resolveKnobs(defaults, req.model, headers);
  const seed = seedOf(req.messages, model);
  const q = knobs.quirks;
  let content: Token[];
  const format = req.response_format?.type;
  if (format === 'json_object' || format === 'json_schema') {
    const variant: JsonVariant = q.has('json_hopeless') ? 'hopeless' : q.has('json_broken') ? 'broken' : q.has('json_fenced') ? 'fenced' : 'clean';
    const value = buildJsonAnswer(req.messages, seed, () => joinTokens(storyTokens(seed, knobs.tokens)));
    content = tokenize(renderJson(value, variant, seed));
  } else {
    // The story is about the words of the text it was given (what follows a "原始文案：" heading).
    const material = storyPart(lastUserText(req.messages));
    const words = topicWords(material);
    content = storyTokens(seed, knobs.tokens, words, words.length ? splitSentences(material).slice(0, 2).filter((s) => s.length <= 120) : []);
  }
  let finish_reason: Answer['finish_reason'] = 'stop';
  const limit = req.max_completion_tokens ?? req.max_tokens;
  if (typeof limit === 'number' && limit >= 0 && content.length > limit) {
    content = content.slice(0, limit);
    finish_reason = 'length';
  }
  return {
    model,
    knobs,
    reasoning: q.has('reasoning') ? reasoningTokens(seed, knobs.reasoning_tokens) : [],
    content,
    finish_reason,
    prompt_tokens: countPromptTokens(req.messages),
  };
}

const joinTokens = (tokens: readonly Token[]) => tokens.map((t) => t.text).join('');

function plan(request: ChatRequest, options?: ExpectOptions): Answer {
  return planAnswer(request, mergeKnobs(DEFAULT_KNOBS, options?.defaults), options?.headers);
}

/** The answer's tokens, one string per streamed content delta (when no failure quirk strikes). */
export function expectedTokens(request: ChatRequest, options?: ExpectOptions): string[] {
  return plan(request, options).content.map((t) => t.text);
}

/** The full answer text a request streams (the concatenation of its content deltas). */
export function expectedText(request: ChatRequest, options?: ExpectOptions): string {
  return joinTokens(plan(request, options).content);
}

/** The `reasoning_content` text streamed before the answer with the `reasoning` quirk ('' without it). */
export function expectedReasoning(request: ChatRequest, options?: ExpectOptions): string {
  return joinTokens(plan(request, options).reasoning);
}
