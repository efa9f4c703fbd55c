/**
 * Who a Chinese story is about, as the simulated model "reads" it: people words (老人, 小女孩 …),
 * short given names before a speech verb (小林说), and who speaks a quoted line. Used for the character
 * list a studio asks for and for the `speaker` of storyboard shots that hold dialogue.
 */
import { hash32 } from './text.ts';

/** People words, each with the looks the model imagines for it (one is picked per story, deterministically). */
const LOOKS: [RegExp, string[]][] = [
  [/^(老人|老爷爷|爷爷|外公|老渔夫)$/, ['白发、深蓝毛衣', '花白胡子、灰色中山装', '银发、驼色开衫、老花镜']],
  [/^(老奶奶|奶奶|外婆)$/, ['银白短发、碎花棉袄', '盘发、藏青布衫']],
  [/^(小女孩|女孩|姑娘|少女|妹妹|姐姐)$/, ['扎马尾、红色雨衣', '齐肩短发、黄色连衣裙', '双麻花辫、白色毛衣']],
  [/^(小男孩|男孩|少年|弟弟|哥哥)$/, ['短发、蓝色校服', '寸头、灰色卫衣、背着书包']],
  [/^(妈妈|母亲|妻子)$/, ['及肩卷发、米色风衣', '低马尾、浅绿针织衫']],
  [/^(爸爸|父亲|丈夫)$/, ['短发、戴黑框眼镜、深灰夹克', '络腮胡、格子衬衫']],
  [/猫$/, ['橘色短毛、琥珀色眼睛', '黑色长毛、绿眼睛']],
  [/狗$/, ['金黄色短毛、系红色项圈', '黑白相间、竖耳朵']],
];
const DEFAULT_LOOKS = ['黑色短发、白衬衫、牛仔裤', '长发、深红色外套', '戴鸭舌帽、军绿色夹克'];

// Longest first, so 小女孩 is found before 女孩.
const PEOPLE_WORDS = ['老奶奶', '老爷爷', '小女孩', '小男孩', '老渔夫', '老人', '奶奶', '爷爷', '外婆', '外公', '女孩', '男孩', '少年', '少女', '姑娘', '妈妈', '母亲', '爸爸', '父亲', '妻子', '丈夫', '哥哥', '姐姐', '弟弟', '妹妹', '老师', '医生', '船长', '橘猫', '黑猫', '小猫', '小狗'];
const PEOPLE = new RegExp(PEOPLE_WORDS.join('|'), 'g');
/** A short given name right before a speech verb or a colon: 小林说, 阿明问, 小雨： */
const GIVEN_NAME = /(?:小|阿)[\u4e00-\u9fa5](?=轻声|低声|大声|笑着|说|问|喊|叫|答|道|[:：])/g;
const OPEN_QUOTE = /[“「『"]/;
const CLOSE_QUOTE = /[”」』"]/;

interface Mention {
  name: string;
  index: number;
}

function mentions(text: string): Mention[] {
  const found = [...text.matchAll(PEOPLE), ...text.matchAll(GIVEN_NAME)].map((m) => ({ name: m[0], index: m.index }));
  return found.sort((a, b) => a.index - b.index);
}

/** The people a text names, in order of first mention; 女孩 is dropped when 小女孩 is there too. */
export function peopleIn(text: string): string[] {
  const names = [...new Set(mentions(text).map((m) => m.name))];
  return names.filter((n) => !names.some((o) => o !== n && o.includes(n)));
}

/** A look for a character, the same for the same story (seed). */
export function lookOf(name: string, seed: number): string {
  const looks = LOOKS.find(([re]) => re.test(name))?.[1] ?? DEFAULT_LOOKS;
  return looks[hash32(name, seed) % looks.length];
}

/**
 * Who speaks the quoted line of a shot's narration: the person named last before the opening quote
 * (老人说："…"), else the first named after it (“…”女孩笑着说); null when the text quotes nobody.
 */
export function speakerOf(text: string): string | null {
  const open = OPEN_QUOTE.exec(text);
  if (!open) return null;
  const all = mentions(text);
  const before = all.filter((m) => m.index < open.index).at(-1);
  if (before) return before.name;
  const rest = text.slice(open.index + 1);
  const close = CLOSE_QUOTE.exec(rest);
  const afterIndex = open.index + 1 + (close ? close.index + 1 : rest.length);
  return all.find((m) => m.index >= afterIndex)?.name ?? null;
}

/** The character list a studio asks for: `{ characters: [{ name, look }] }` for the people of the story. */
export function buildCharacters(story: string, seed: number): { characters: { name: string; look: string }[] } {
  return { characters: peopleIn(story).slice(0, 8).map((name) => ({ name, look: lookOf(name, seed) })) };
}
