/**
 * Structured answers for `response_format` requests, built from the prompt so a pipeline run over the
 * simulated upstream produces output that belongs to its input.
 *
 * Conventions (what a prompt has to look like for the simulated model to "understand" it):
 * - A prompt (any system or user message) that shows the JSON key `"characters"` gets
 *   `{ "characters": [{ name, look }] }` for the people of the last user message (people.ts); otherwise
 *   one that mentions camera / 运镜 gets `{ "movements": [...] }`; otherwise one that mentions
 *   storyboard / 分镜 gets `{ "shots": [...] }`; otherwise `{ "title", "content" }`. Camera is checked
 *   before storyboard because a camera prompt usually quotes shots.
 * - Storyboard shots whose narration quotes someone carry `speaker`: who says it (people.ts).
 * - Storyboard: the text to split is the last user message. It is cut into sentences; sentences that
 *   read like instructions (they mention 分镜, storyboard, JSON, 输出, output, 格式, format) are dropped;
 *   the rest become 3–8 shots (short texts are padded with generated sentences, long ones merged).
 * - Camera: one movement per shot found in the prompt, looked for in this order: a JSON array of
 *   objects (or an object with a `shots` array) anywhere in a message, whose items' `sequence_number`
 *   is kept when present; else numbered lines (`1. …`, `镜头2:…`, `Shot 3) …`, `#4 …`); else the
 *   sentences of the last user message, as for a storyboard.
 */
import { MOVEMENT_TYPES, type MovementType } from '@ai-story/contracts';
import { buildCharacters, speakerOf } from './people.ts';
import { hash32, rng, splitSentences, storySentences, topicWords } from './text.ts';

export interface ChatMessage {
  role: string;
  content: unknown;
}

export type JsonVariant = 'clean' | 'fenced' | 'broken' | 'hopeless';

export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  // Multi-part content (`[{ type: 'text', text }]`), as the OpenAI API accepts.
  if (Array.isArray(content)) {
    return content.map((p) => (p && typeof p === 'object' && typeof p.text === 'string' ? p.text : '')).join('');
  }
  return '';
}

export function lastUserText(messages: readonly ChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i].role === 'user') return contentText(messages[i].content);
  return '';
}

const graphemes = new Intl.Segmenter('zh', { granularity: 'grapheme' });
const INSTRUCTION = /分镜|storyboard|json|输出|output|格式|format|运镜|camera/i;
const SHOT_SIZES = [
  ['远景', 'wide shot'],
  ['全景', 'full shot'],
  ['中景', 'medium shot'],
  ['近景', 'close shot'],
  ['特写', 'close-up'],
] as const;
const LIGHTS = ['soft rim light', 'neon reflections', 'golden hour', 'moonlight', 'warm tungsten light', 'overcast haze'];

export interface Shot {
  sequence_number: number;
  scene_description: string;
  narration_text: string;
  image_prompt: string;
  duration_seconds: number;
  /** Who says the shot's quoted line; absent when the narration is the narrator's. */
  speaker?: string;
}

/**
 * The story a storyboard prompt quotes: what follows its last "故事文案：" / "Story:" heading line, as a
 * real model would tell the instructions from the material; the whole message when there is none.
 */
export function storyPart(text: string): string {
  const heading = /^[ \t]*(?:故事文案|原始文案|文案|story(?: text)?|text)[ \t]*[:：][ \t]*$/gim;
  let start = -1;
  for (const m of text.matchAll(heading)) start = m.index + m[0].length;
  return start >= 0 ? text.slice(start) : text;
}

/** The shot count a storyboard prompt asks for ("恰好 4 个镜头", "exactly 4 shots"), if it asks. */
function askedShotCount(prompt: string): number | null {
  const m = /恰好\s*(\d{1,2})\s*个镜头|exactly\s+(\d{1,2})\s+shots/i.exec(prompt);
  const n = m ? Number(m[1] ?? m[2]) : NaN;
  return n >= 1 && n <= 60 ? n : null;
}

export function buildStoryboard(messages: readonly ChatMessage[], seed: number): { shots: Shot[] } {
  const prompt = lastUserText(messages);
  const sentences = splitSentences(storyPart(prompt)).filter((s) => !INSTRUCTION.test(s));
  const groups = groupSentences(sentences, seed, topicWords(storyPart(prompt)), askedShotCount(storyPart(prompt) === prompt ? '' : prompt.slice(0, prompt.length - storyPart(prompt).length)));
  return {
    shots: groups.map((narration, i) => {
      const h = hash32(narration, seed);
      const [sizeZh, sizeEn] = SHOT_SIZES[h % SHOT_SIZES.length];
      // Cut by grapheme, never inside an emoji (a cut surrogate pair is a broken character downstream).
      const gist = [...graphemes.segment(narration.replace(/[\s,。!?!?,;;:“”"……、]+/g, ' ').trim())].slice(0, 24).map((g) => g.segment).join('');
      return {
        sequence_number: i + 1,
        scene_description: `${sizeZh}:${gist}`,
        narration_text: narration,
        image_prompt: `cinematic film still, ${sizeEn}, ${LIGHTS[(h >>> 8) % LIGHTS.length]}, 35mm, highly detailed, ${gist}`,
        duration_seconds: Math.min(10, Math.max(3, Math.round([...narration].length / 4.5))),
        ...speakerField(narration),
      };
    }),
  };
}

function speakerField(narration: string): { speaker?: string } {
  const speaker = speakerOf(narration);
  return speaker ? { speaker } : {};
}

/**
 * Narration groups: exactly the count asked for when the prompt asks (a model that follows its
 * instructions), else 3–8. A short text is padded with generated sentences, a long one merged evenly.
 */
function groupSentences(sentences: string[], seed: number, words: string[], asked: number | null): string[] {
  const min = asked ?? 3;
  const max = asked ?? 8;
  const list = sentences.length >= min ? sentences : [...sentences, ...storySentences(seed, min - sentences.length, words)];
  if (list.length <= max) return list;
  const groups: string[] = [];
  for (let g = 0; g < max; g++) {
    groups.push(list.slice(Math.floor((g * list.length) / max), Math.floor(((g + 1) * list.length) / max)).join(''));
  }
  return groups;
}

// The simulated model answers in the studio's own vocabulary (DESIGN §1).
export { MOVEMENT_TYPES, type MovementType } from '@ai-story/contracts';

const MOVEMENT_HINTS: [RegExp, MovementType][] = [
  [/特写|close-?up|眼|脸/i, 'zoom_in'],
  [/远景|全景|wide|城市|海|landscape/i, 'zoom_out'],
  [/天空|星|仰|灯塔|sky/i, 'tilt_up'],
  [/地面|俯|脚|floor/i, 'tilt_down'],
  [/走|跑|追|列车|靠近|walk|run/i, 'dolly_in'],
  [/离开|告别|远去|leave/i, 'dolly_out'],
];
const MOVEMENT_ZH: Record<MovementType, string> = {
  static: '固定镜头,让画面自己说话',
  zoom_in: '缓慢推近,聚焦人物的神情',
  zoom_out: '拉远展现环境,交代空间关系',
  pan_left: '向左横摇,跟随视线移动',
  pan_right: '向右横摇,揭示画面另一侧',
  tilt_up: '向上摇镜,从人物过渡到天空',
  tilt_down: '向下摇镜,落到细节上',
  dolly_in: '推轨靠近,增强代入感',
  dolly_out: '推轨后退,留下余韵',
};
const SPEEDS = ['slow', 'medium', 'fast'] as const;
const EASINGS = ['linear', 'ease_in', 'ease_out', 'ease_in_out'] as const;

export interface Movement {
  sequence_number: number;
  movement_type: MovementType;
  params: { speed: (typeof SPEEDS)[number]; intensity: number; easing: (typeof EASINGS)[number]; description: string };
}

export function buildCamera(messages: readonly ChatMessage[], seed: number): { movements: Movement[] } {
  const shots = findShots(messages, seed);
  return {
    movements: shots.map(({ seq, text }) => {
      const h = hash32(text, seed);
      const movement_type = MOVEMENT_HINTS.find(([re]) => re.test(text))?.[1] ?? MOVEMENT_TYPES[h % MOVEMENT_TYPES.length];
      return {
        sequence_number: seq,
        movement_type,
        params: {
          speed: SPEEDS[(h >>> 4) % SPEEDS.length],
          intensity: Math.round((0.2 + ((h >>> 8) % 70) / 100) * 100) / 100,
          easing: EASINGS[(h >>> 12) % EASINGS.length],
          description: MOVEMENT_ZH[movement_type],
        },
      };
    }),
  };
}

interface FoundShot {
  seq: number;
  text: string;
}

function findShots(messages: readonly ChatMessage[], seed: number): FoundShot[] {
  const texts = messages.map((m) => contentText(m.content)).reverse();
  for (const t of texts) {
    const fromJson = shotsFromJson(t);
    if (fromJson) return fromJson;
  }
  for (const t of texts) {
    const lines = numberedLines(t);
    if (lines.length) return lines;
  }
  return buildStoryboard(messages, seed).shots.map((s) => ({ seq: s.sequence_number, text: s.narration_text }));
}

function shotsFromJson(text: string): FoundShot[] | null {
  for (const [open, close] of [
    ['[', ']'],
    ['{', '}'],
  ] as const) {
    const start = text.indexOf(open);
    const end = text.lastIndexOf(close);
    if (start < 0 || end <= start) continue;
    let value: unknown;
    try {
      value = JSON.parse(text.slice(start, end + 1));
    } catch {
      continue;
    }
    const list = Array.isArray(value) ? value : (value as { shots?: unknown })?.shots;
    if (!Array.isArray(list) || !list.length || !list.every((x) => x && typeof x === 'object')) continue;
    return list.map((item: Record<string, unknown>, i) => ({
      seq: typeof item.sequence_number === 'number' ? item.sequence_number : i + 1,
      text: String(item.scene_description ?? item.narration_text ?? item.description ?? JSON.stringify(item)),
    }));
  }
  return null;
}

const NUMBERED = /^\s*(?:#{1,3}\s*)?(?:镜头|分镜|shot\s*|#)?\s*(\d{1,3})\s*[.、::)\]]\s*(.*)$/i;

function numberedLines(text: string): FoundShot[] {
  const seen = new Set<number>();
  const out: FoundShot[] = [];
  for (const line of text.split('\n')) {
    const m = NUMBERED.exec(line);
    if (!m) continue;
    const seq = Number(m[1]);
    if (seen.has(seq)) continue;
    seen.add(seq);
    out.push({ seq, text: m[2] });
  }
  return out;
}

export function buildJsonAnswer(messages: readonly ChatMessage[], seed: number, storyText: () => string): unknown {
  const prompt = messages.map((m) => contentText(m.content)).join('\n');
  if (/"characters"/.test(prompt)) return buildCharacters(lastUserText(messages), seed);
  if (/camera|运镜/i.test(prompt)) return buildCamera(messages, seed);
  if (/storyboard|分镜/i.test(prompt)) return buildStoryboard(messages, seed);
  const text = storyText();
  return { title: text.split('\n')[0].replace(/^🎬 《|》$/gu, ''), content: text };
}

/** The JSON text as a model would stream it, one item per line; and the misbehaving variants. */
export function renderJson(value: unknown, variant: JsonVariant, seed: number): string {
  switch (variant) {
    case 'clean':
      return layout(value, false);
    case 'fenced':
      return '```json\n' + layout(value, false) + '\n```\n\n以上是根据文案生成的结果,如需调整请告诉我 🙂';
    case 'broken':
      // Unquoted keys and trailing commas: what weaker models emit; `jsonrepair` fixes both.
      return layout(value, true);
    case 'hopeless': {
      const r = rng(seed);
      return pickOne(r, [
        '抱歉🙏,作为一个语言模型,我暂时无法完成这个任务。',
        '好的!下面是结果:镜头一 → 小林 🤷 镜头二 → (此处省略)……',
        '<think>让我想想</think> 嗯……这个分镜我还需要更多信息,可以再描述一下吗?',
      ]);
    }
  }
}

const pickOne = <T>(r: () => number, list: readonly T[]) => list[Math.floor(r() * list.length)];

/** Top-level arrays get one element per line (as models print them); everything else compact. */
function layout(value: unknown, broken: boolean): string {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value).map(([k, v]) => {
      const key = broken ? k : JSON.stringify(k);
      if (!Array.isArray(v)) return `${key}:${compact(v, broken)}`;
      const items = v.map((x) => '  ' + compact(x, broken));
      return `${key}:[\n${items.join(',\n')}${broken ? ',' : ''}\n]`;
    });
    return `{${entries.join(',')}${broken ? ',' : ''}}`;
  }
  return compact(value, broken);
}

function compact(value: unknown, broken: boolean): string {
  if (!broken) return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((x) => compact(x, true)).join(',')},]`;
  if (value && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${k}:${compact(v, true)}`)
      .join(',')},}`;
  }
  return JSON.stringify(value);
}
