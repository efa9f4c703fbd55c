/**
 * Deterministic content of the simulated upstream: the same request always streams the same tokens.
 *
 * The story text mixes CJK, ASCII words, full-width and ASCII punctuation, JSON-escaped characters
 * (`"` and newlines) and emoji — several of them multi-codepoint grapheme clusters (ZWJ families,
 * skin tones, flags, variation selectors) — so every layer between the upstream and the browser has
 * to get UTF-8 and JSON escaping right.
 */

/** A token: its text and its JSON string literal, encoded once so the hot path only concatenates. */
export interface Token {
  readonly text: string;
  readonly json: string;
}

const segmenter = new Intl.Segmenter('zh', { granularity: 'grapheme' });
const HAN = /\p{Script=Han}/u;
const WORD = /^[A-Za-z0-9_.'-]$/;
/** Han characters per token, in turn: about 1.7 per token, like common BPE vocabularies. */
const HAN_PIECE = [2, 1, 2];

const tokenCache = new Map<string, Token>();
function token(text: string): Token {
  let t = tokenCache.get(text);
  if (!t) {
    t = { text, json: JSON.stringify(text) };
    // The cache is for the fixed vocabulary; JSON-mode pieces are unbounded, keep the map small.
    if (tokenCache.size < 50_000) tokenCache.set(text, t);
  }
  return t;
}

/**
 * Splits text into LLM-sized tokens: Han runs in pieces of one or two characters, ASCII words with
 * their leading space (as BPE tokenizers do), every emoji grapheme cluster whole, punctuation alone.
 */
export function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let buf = '';
  let kind: 'han' | 'word' | 'nl' | '' = '';
  let hanPieces = 0;
  let hanLimit = 2;
  const flush = () => {
    if (buf) out.push(token(buf));
    buf = '';
    kind = '';
  };
  for (const { segment: g } of segmenter.segment(text)) {
    if (HAN.test(g)) {
      if (kind !== 'han' || buf.length >= hanLimit) {
        flush();
        hanLimit = HAN_PIECE[hanPieces++ % HAN_PIECE.length];
      }
      kind = 'han';
      buf += g;
    } else if (WORD.test(g)) {
      if ((kind !== 'word' && buf !== ' ') || buf.length >= 7) flush();
      kind = 'word';
      buf += g;
    } else if (g === ' ') {
      flush();
      buf = ' ';
    } else if (g === '\n') {
      if (kind !== 'nl') flush();
      kind = 'nl';
      buf += g;
    } else {
      flush();
      out.push(token(g));
    }
  }
  flush();
  return out;
}

// ---- the story generator -------------------------------------------------------------------------

/** FNV-1a over UTF-16 code units: cheap, stable across runs and platforms. */
export function hash32(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: a tiny deterministic PRNG in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(r: () => number, list: readonly T[]): T => list[Math.floor(r() * list.length)];

const phrases = (list: readonly string[]) => list.map(tokenize);

const TITLES = phrases(['雨夜的列车', '灯塔守望者', '2049 年的来信', '橘猫与机器人', '最后一班地铁', '星空下的约定']);
const PLACES = phrases(['那天夜里', '2049 年的春天', '在旧城区的巷子里', '雨停之后', '凌晨三点', '在开往海边的列车上', '很久以前', '第二天清晨']);
const SUBJECTS = phrases(['小林', '奶奶', '机器人阿七', '我们', '那只橘猫', '她', '老船长', '程序员 Leo']);
const ADVERBS = phrases(['悄悄地', '忽然', '终于', '第一次', '小心翼翼地', '又一次']);
const VERBS = phrases(['打开了', '看见了', '想起了', '找到了', '修好了', '写下了', '带走了', '听见了']);
const OBJECTS = phrases([
  '一封泛黄的信',
  '一把生锈的钥匙',
  '星空下的灯塔',
  '城市的霓虹',
  '一台老式 Walkman',
  '妈妈留下的相机📷',
  '那首歌《Yesterday》',
  '“OK”两个字',
  'AI 写的一首诗',
]);
const TAILS = phrases([
  '心里一阵温暖',
  '眼泪差点掉下来',
  '一切都安静了',
  '远处传来汽笛声🚢',
  '全家人👨‍👩‍👧都笑了',
  '窗外下起了小雨🌧️',
  '像一部老电影🎬',
  '仿佛时间停住了',
  'Wi-Fi 信号突然满格',
  '他轻声说:"See you, 明天见."',
]);
const SPRINKLES = phrases(['✨', '❤️‍🔥', '🧑‍🚀', '👍🏽', '🏳️‍🌈', '🇨🇳']);
const ENDS = phrases(['。', '!', '?', '……']);
const COMMA = tokenize(',');
const PARAGRAPH = tokenize('\n\n');
const TITLE_OPEN = tokenize('🎬 《');
const TITLE_CLOSE = tokenize('》\n\n');

const THINKING = phrases([
  '嗯,',
  '用户想要一个故事。',
  '先想想人物:',
  '主角可以是',
  '情节要有一个转折,',
  '结尾要温暖一点。',
  '加一点 emoji 点缀✨',
  '节奏不要太快,',
  '好的,开始写。',
]);

const wordSegmenter = new Intl.Segmenter('zh', { granularity: 'word' });
/** Words that carry no story (function words, and the words of the studio's own instructions). */
const STOP_WORDS = new Set(
  '我们 你们 他们 她们 它们 一个 一只 一头 一位 这个 那个 这些 那些 因为 所以 但是 然后 自己 没有 什么 已经 可以 就是 还是 如果 虽然 不是 我的 你的 他的 她的 时候 一起 故事 文案 改写 风格 要求 原始 旁白 短视频 开头 句子 观众 发现 点亮 回到 看到 看见 找到 带着 带回 回家 离开 来到 走到 想起 听见 开始 成为 变成 遇到 决定 寻找 帮助 迷路 知道 觉得 the and with for from that this into over about story'.split(' '),
);

/**
 * The words a story is about (names, places, objects), in order of first appearance: what the simulated
 * model writes its answer from, so a newcomer's first run tells their own story.
 */
export function topicWords(text: string, max = 12): string[] {
  const seen = new Set<string>();
  for (const { segment, isWordLike } of wordSegmenter.segment(text)) {
    if (!isWordLike) continue;
    const w = segment.trim();
    const han = HAN.test(w);
    if ((han && [...w].length < 2) || (!han && !/^\p{L}{3,}$/u.test(w)) || STOP_WORDS.has(w.toLowerCase())) continue;
    seen.add(w);
    if (seen.size >= max) break;
  }
  return [...seen];
}

/** A word as it sits in a Chinese sentence: Latin words get spaces around them. */
const inline = (w: string) => (HAN.test(w) ? w : ` ${w} `);

/**
 * `n` story tokens for this seed: a title, then sentences grouped in paragraphs. With `words` (the
 * topic's), every sentence is about them; without, the built-in cast tells a story of its own.
 */
export function storyTokens(seed: number, n: number, words: readonly string[] = [], lead: readonly string[] = []): Token[] {
  if (words.length) return topicStoryTokens(seed, n, words, lead);
  const r = rng(seed);
  const out: Token[] = [...TITLE_OPEN, ...pick(r, TITLES), ...TITLE_CLOSE];
  let inParagraph = 0;
  while (out.length < n) {
    if (r() < 0.4) out.push(...pick(r, PLACES), ...COMMA);
    out.push(...pick(r, SUBJECTS));
    if (r() < 0.6) out.push(...pick(r, ADVERBS));
    out.push(...pick(r, VERBS), ...pick(r, OBJECTS));
    if (r() < 0.6) out.push(...COMMA, ...pick(r, TAILS));
    if (r() < 0.15) out.push(...pick(r, SPRINKLES));
    out.push(...pick(r, ENDS));
    if (++inParagraph >= 2 + Math.floor(r() * 3)) {
      out.push(...PARAGRAPH);
      inParagraph = 0;
    }
  }
  out.length = n;
  return out;
}

function topicStoryTokens(seed: number, n: number, words: readonly string[], lead: readonly string[]): Token[] {
  const r = rng(seed);
  const title = words.length > 1 ? `${words[0]}与${words[1]}` : words[0];
  const out: Token[] = [...TITLE_OPEN, ...tokenize(title.trim()), ...TITLE_CLOSE];
  // A rewrite keeps the core of its material: the text's own first sentences open the story.
  if (lead.length) out.push(...tokenize(lead.join('')), ...PARAGRAPH);
  let inParagraph = 0;
  // Each sentence's subject walks the topic's words in order, so all of them appear early on.
  for (let i = 0; out.length < n; i++) {
    const subject = words[i % words.length];
    const object = words.length > 1 ? words[(i + 1 + Math.floor(r() * (words.length - 1))) % words.length] : pick(r, OBJECTS).map((t) => t.text).join('');
    let sentence = '';
    if (r() < 0.4) sentence += pick(r, PLACES).map((t) => t.text).join('') + ',';
    sentence += inline(subject);
    if (r() < 0.6) sentence += pick(r, ADVERBS).map((t) => t.text).join('');
    sentence += pick(r, VERBS).map((t) => t.text).join('') + inline(object);
    if (r() < 0.6) sentence += ',' + pick(r, TAILS).map((t) => t.text).join('');
    if (r() < 0.15) sentence += pick(r, SPRINKLES)[0].text;
    out.push(...tokenize(sentence.replace(/ +/g, ' ').replace(/ ([,,])/g, '$1')), ...pick(r, ENDS));
    if (++inParagraph >= 2 + Math.floor(r() * 3)) {
      out.push(...PARAGRAPH);
      inParagraph = 0;
    }
  }
  out.length = n;
  return out;
}

/** `n` tokens of DeepSeek-style thinking that precede the answer. */
export function reasoningTokens(seed: number, n: number): Token[] {
  const r = rng(seed ^ 0x5eed);
  const out: Token[] = [];
  while (out.length < n) {
    const p = pick(r, THINKING);
    out.push(...p);
    if (p === THINKING[3]) out.push(...pick(r, SUBJECTS), ...COMMA);
  }
  out.length = n;
  return out;
}

/** Plain story sentences (for padding a storyboard whose input is too short), about `words` when given. */
export function storySentences(seed: number, count: number, words: readonly string[] = []): string[] {
  const text = storyTokens(seed, 40 * count + 20, words)
    .slice(TITLE_OPEN.length + 6)
    .map((t) => t.text)
    .join('');
  return splitSentences(text).slice(1, count + 1);
}

/** Sentences of a text, each keeping its closing punctuation. */
export function splitSentences(text: string): string[] {
  const out: string[] = [];
  // Full-width ！？； end sentences too, and a closing quote stays with the sentence it closes (老人问：“谁的？”).
  for (const part of text.split(/(?<=[。！？；!?;…]+[”"」』]?)(?![。！？；!?;…”"」』])|\n+/)) {
    const s = part.trim();
    if (s) out.push(s);
  }
  return out;
}
