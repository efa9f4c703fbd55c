/**
 * The one font every picture, subtitle and cover is drawn with: Debian's Noto Sans CJK SC
 * (fonts-noto-cjk). Text a model writes often carries emoji and other symbols this font has no glyph
 * for; librsvg and libass would draw them as empty boxes, so text meant to be seen goes through
 * `drawableText` first.
 */
import { onFirstUse } from '../on-first-use.ts';

export const CJK_FONT_FAMILY = 'Noto Sans CJK SC';
export const CJK_FONT_FILE = '/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc';
const CJK_FONT_FACE = 'NotoSansCJKsc-Regular';

// fontkit 2 ships no type declarations; this is the narrow part used here.
interface FontkitFont {
  unitsPerEm: number;
  'OS/2': { winAscent: number; winDescent: number };
  hhea: { ascent: number; descent: number };
  layout(text: string): { advanceWidth: number };
  hasGlyphForCodePoint(codePoint: number): boolean;
}
const fontkit = onFirstUse<{ openSync(path: string, postscriptName?: string): FontkitFont }>('fontkit');

let font: FontkitFont | undefined;
export function cjkFont(): FontkitFont {
  return (font ??= fontkit().openSync(CJK_FONT_FILE, CJK_FONT_FACE));
}

/** Joiners and selectors that only glue emoji together; without the emoji they are noise. */
const EMOJI_GLUE = /[\u200D\uFE0E\uFE0F\u20E3]|\p{Emoji_Modifier}/gu;

/**
 * `text` without the characters the font cannot draw (emoji, pictographs, private-use marks) and
 * without the spaces their removal leaves doubled. Whitespace is kept: callers wrap on it.
 */
export function drawableText(text: string): string {
  const f = cjkFont();
  let out = '';
  for (const ch of text.replace(EMOJI_GLUE, '')) {
    const cp = ch.codePointAt(0)!;
    if (/\s/.test(ch) || f.hasGlyphForCodePoint(cp)) out += ch;
  }
  return out === text ? text : out.replace(/ {2,}/g, ' ').trim();
}
