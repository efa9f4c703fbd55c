/** Text set in the SVG pictures sharp rasterises (offline images, covers): the font, wrapping and escaping. */
import { CJK_FONT_FAMILY } from './cjk-font.ts';

/** librsvg finds the font through fontconfig; the fallbacks keep Latin text drawn if it is missing. */
export const SVG_FONT_FAMILY = `'${CJK_FONT_FAMILY}', 'Noto Sans CJK', 'Noto Sans', sans-serif`;

/**
 * Wraps by estimated advance widths (CJK ideographs and fullwidth punctuation are one em, Latin about
 * half): librsvg cannot wrap, and measuring with the font would cost more than the render. Latin
 * words are kept whole; CJK breaks anywhere except before closing punctuation.
 */
export function wrapText(text: string, maxWidth: number, fontSize: number, maxLines: number): string[] {
  const tokens = text.match(/[\u2E80-\uFFEF]|[^\s\u2E80-\uFFEF]+|\s+/g) ?? [];
  const lines: string[] = [];
  let line = '';
  let width = 0;
  const advance = (t: string) => [...t].reduce((sum, ch) => sum + (/[\u2E80-\uFFEF]/.test(ch) ? 1 : /\s/.test(ch) ? 0.3 : 0.56), 0) * fontSize * 1.04;
  for (const token of tokens) {
    const tw = advance(token);
    const closing = /^[，。、；：！？」』）》,.;:!?)]$/.test(token);
    if (width + tw > maxWidth && line.trim() && !closing) {
      lines.push(line.trim());
      line = '';
      width = 0;
      if (/^\s+$/.test(token)) continue;
    }
    line += token;
    width += tw;
  }
  if (line.trim()) lines.push(line.trim());
  if (lines.length <= maxLines) return lines;
  const kept = lines.slice(0, maxLines);
  kept[maxLines - 1] = kept[maxLines - 1].replace(/.$/u, '') + '…';
  return kept;
}

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}
