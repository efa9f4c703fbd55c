import { parse as parseAssText, stringify as stringifyAss, type ParsedASS } from 'ass-compiler';
import { parseSync, stringifySync, type NodeList } from 'subtitle';
import { CJK_FONT_FAMILY, cjkFont, drawableText } from '../media/cjk-font.ts';
import type { SentenceTiming } from './audio.ts';

/**
 * Subtitle lines from measured sentence timings, and their SRT / ASS files (DESIGN §9 export).
 *
 * Lines: a sentence breaks after clause punctuation (，、：；。！？… and , ; : ! ?); a clause of fewer
 * than MIN_LINE_CHARS spoken characters joins its neighbour when the two fit on one line; a clause
 * still too wide wraps by MEASURED width (Noto Sans CJK SC metrics through fontkit), never before a
 * closing punctuation mark and, in Latin text, between words where it can. Whitespace at a line break
 * belongs to no line; inside a line it is kept. So, per sentence, the lines cover the sentence text
 * in order, separated only by whitespace (the same contract as splitSentences).
 *
 * Times: a sentence's span is split across its lines in proportion to their spoken characters
 * (letters and digits; punctuation and spaces weigh nothing, a line weighs at least 1). The lines of
 * one sentence are contiguous; the pause between sentences shows no subtitle.
 */
export type SafeAreaPreset = 'douyin' | 'kuaishou' | 'bilibili' | 'youtube_shorts' | 'none';

/**
 * Fractions of the frame kept clear, for vertical video. Approximations of each app's overlays
 * (measured from screenshots at 1080×1920, rounded up): the caption, music and account rows sit
 * at the bottom; the like/comment column sits on the right above them.
 * - douyin (抖音): bottom 20% clear, sides 8%;
 * - kuaishou (快手): bottom 18%, sides 8%;
 * - bilibili (竖屏): bottom 15%, sides 6%;
 * - youtube_shorts: bottom 22% (title and channel rows), sides 8%;
 * - none: a plain 5% title-safe margin.
 */
export const SAFE_AREAS: Record<SafeAreaPreset, { bottom: number; side: number }> = {
  douyin: { bottom: 0.2, side: 0.08 },
  kuaishou: { bottom: 0.18, side: 0.08 },
  bilibili: { bottom: 0.15, side: 0.06 },
  youtube_shorts: { bottom: 0.22, side: 0.08 },
  none: { bottom: 0.05, side: 0.05 },
};

export interface SubtitleStyle {
  /** The frame (PlayResX/PlayResY): ASS sizes and margins are in these pixels. */
  width: number;
  height: number;
  /** ASS Fontsize; default 6.5% of the frame's short side (70 at 1080 wide). */
  fontSize?: number;
  /** Border width in pixels; default fontSize/16, at least 1. */
  outline?: number;
  /** ASS colours, &HAABBGGRR. */
  primaryColour?: string;
  outlineColour?: string;
  preset?: SafeAreaPreset;
}

export interface SubtitleLine {
  text: string;
  start_s: number;
  end_s: number;
}

const MIN_LINE_CHARS = 4;
/** Kept free beyond the safe area for hinting and shaping differences between fontkit and libass. */
const WIDTH_SAFETY = 0.95;

const CLAUSE_END = new Set(['，', '、', '：', '；', '。', '！', '？', '…', ',', ';', ':', '!', '?', '．', '.']);
/** Marks that must not begin a line (Chinese line-breaking rules, 禁则). */
const NO_LINE_START = new Set([...CLAUSE_END, '”', '’', '」', '』', '）', '》', '〉', '】', ')', '"', "'", '·', '—']);

export function resolveStyle(style: SubtitleStyle) {
  const fontSize = style.fontSize ?? Math.round(Math.min(style.width, style.height) * 0.065);
  const outline = style.outline ?? Math.max(1, Math.round(fontSize / 16));
  const area = SAFE_AREAS[style.preset ?? 'none'];
  return {
    width: style.width,
    height: style.height,
    fontSize,
    outline,
    primaryColour: style.primaryColour ?? '&H00FFFFFF',
    outlineColour: style.outlineColour ?? '&H00000000',
    marginL: Math.round(style.width * area.side),
    marginR: Math.round(style.width * area.side),
    marginV: Math.round(style.height * area.bottom),
  };
}

/**
 * The width libass draws `text` at ASS size `fontSize`, in pixels. libass (like VSFilter) makes
 * Fontsize the font's full height (winAscent + winDescent), not its em: Noto CJK's em is
 * 1000/1448 of the size.
 */
export function measureTextWidth(text: string, fontSize: number): number {
  const font = cjkFont();
  const os2 = font['OS/2'];
  const height = os2.winAscent + os2.winDescent || font.hhea.ascent - font.hhea.descent;
  return (font.layout(text).advanceWidth * fontSize) / height;
}

/** The widest line (text plus its border on both sides) that fits between the margins. */
export function maxLineWidth(style: SubtitleStyle): number {
  const s = resolveStyle(style);
  return (s.width - s.marginL - s.marginR) * WIDTH_SAFETY;
}

export function lineWidth(text: string, style: SubtitleStyle): number {
  const s = resolveStyle(style);
  return measureTextWidth(text, s.fontSize) + 2 * s.outline;
}

export function subtitleLines(sentences: SentenceTiming[], style: SubtitleStyle): SubtitleLine[] {
  const lines: SubtitleLine[] = [];
  for (const sentence of sentences) {
    const texts = splitLines(drawableText(sentence.text), style);
    const weights = texts.map((t) => Math.max(1, spokenChars(t)));
    const total = weights.reduce((a, b) => a + b, 0);
    const span = sentence.end_s - sentence.start_s;
    let acc = 0;
    for (const [i, text] of texts.entries()) {
      const start = sentence.start_s + (span * acc) / total;
      acc += weights[i];
      const end = i === texts.length - 1 ? sentence.end_s : sentence.start_s + (span * acc) / total;
      lines.push({ text, start_s: ms(start), end_s: ms(end) });
    }
  }
  return lines.filter((l) => l.end_s > l.start_s);
}

/** One sentence's lines (see the module comment for the rules). */
export function splitLines(sentence: string, style: SubtitleStyle): string[] {
  const max = maxLineWidth(style);
  const fits = (r: Range) => lineWidth(slice(sentence, r), style) <= max;
  const clauses = clauseRanges(sentence);
  // Join short clauses with a neighbour when the pair fits.
  const merged: Range[] = [];
  for (const clause of clauses) {
    const prev = merged[merged.length - 1];
    const joined: Range = prev ? { start: prev.start, end: clause.end } : clause;
    if (prev && (spokenChars(slice(sentence, prev)) < MIN_LINE_CHARS || spokenChars(slice(sentence, clause)) < MIN_LINE_CHARS) && fits(joined)) {
      merged[merged.length - 1] = joined;
    } else merged.push(clause);
  }
  return merged.flatMap((r) => (fits(r) ? [r] : wrapByWidth(sentence, r, style, max))).map((r) => slice(sentence, r)).filter(Boolean);
}

interface Range {
  start: number;
  end: number;
}

const slice = (text: string, r: Range) => text.slice(r.start, r.end).trim();
const spokenChars = (text: string) => (text.match(/[\p{L}\p{N}]/gu) ?? []).length;
const ms = (s: number) => Math.round(s * 1000) / 1000;

function clauseRanges(text: string): Range[] {
  const ranges: Range[] = [];
  let start = 0;
  const cps = codePoints(text);
  for (let k = 0; k < cps.length; k++) {
    const { ch, at } = cps[k];
    if (!CLAUSE_END.has(ch)) continue;
    // "." inside a word or number (3.14, example.com) is not a clause end.
    if (ch === '.' && k + 1 < cps.length && !/\s/.test(cps[k + 1].ch)) continue;
    let end = at + ch.length;
    while (k + 1 < cps.length && NO_LINE_START.has(cps[k + 1].ch)) end = cps[++k].at + cps[k].ch.length;
    ranges.push({ start, end });
    start = end;
  }
  if (start < text.length) ranges.push({ start, end: text.length });
  return ranges.filter((r) => slice(text, r));
}

function codePoints(text: string): { ch: string; at: number }[] {
  const out: { ch: string; at: number }[] = [];
  let at = 0;
  for (const ch of text) {
    out.push({ ch, at });
    at += ch.length;
  }
  return out;
}

/**
 * Breaks a range into units that are never split — a Latin word, or one character with the
 * closing marks after it — then fills lines with units, aiming at equal widths so a long clause does
 * not end in a one-character orphan.
 */
function wrapByWidth(text: string, range: Range, style: SubtitleStyle, max: number): Range[] {
  const units: Range[] = [];
  const cps = codePoints(text).filter((c) => c.at >= range.start && c.at < range.end);
  for (let k = 0; k < cps.length; k++) {
    const first = cps[k].at;
    let end = first + cps[k].ch.length;
    if (/[A-Za-z0-9'-]/.test(cps[k].ch)) {
      while (k + 1 < cps.length && /[A-Za-z0-9'-]/.test(cps[k + 1].ch)) end = cps[++k].at + cps[k].ch.length;
    }
    while (k + 1 < cps.length && NO_LINE_START.has(cps[k + 1].ch)) end = cps[++k].at + cps[k].ch.length;
    units.push({ start: first, end });
  }
  const fits = (r: Range, limit: number) => lineWidth(slice(text, r), style) <= limit;
  const fill = (limit: number): Range[] => {
    const lines: Range[] = [];
    let current: Range | null = null;
    for (const unit of units) {
      const candidate: Range = current ? { start: current.start, end: unit.end } : unit;
      if (!current || fits(candidate, limit)) current = candidate;
      else {
        lines.push(current);
        current = unit;
      }
    }
    if (current) lines.push(current);
    return lines;
  };
  const n = Math.ceil(lineWidth(slice(text, range), style) / max);
  const balanced = fill(Math.min(max, (lineWidth(slice(text, range), style) / n) * 1.1));
  const lines = balanced.length <= n ? balanced : fill(max);
  // A single unit wider than the frame (a very long word) is split by character as a last resort.
  return lines.flatMap((r) => (fits(r, max) ? [r] : splitByCharacter(text, r, style, max)));
}

function splitByCharacter(text: string, range: Range, style: SubtitleStyle, max: number): Range[] {
  const out: Range[] = [];
  let start = range.start;
  let end = start;
  for (const { ch, at } of codePoints(text).filter((c) => c.at >= range.start && c.at < range.end)) {
    if (at > start && lineWidth(text.slice(start, at + ch.length).trim(), style) > max) {
      out.push({ start, end });
      start = at;
    }
    end = at + ch.length;
  }
  out.push({ start, end });
  return out;
}

// ---- SRT ------------------------------------------------------------------------------------

export function toSrt(lines: SubtitleLine[]): string {
  const nodes: NodeList = lines.map((l) => ({ type: 'cue', data: { start: Math.round(l.start_s * 1000), end: Math.round(l.end_s * 1000), text: l.text } }));
  return stringifySync(nodes, { format: 'SRT' });
}

export function parseSrt(srt: string): SubtitleLine[] {
  return parseSync(srt).flatMap((node) => (node.type === 'cue' ? [{ text: node.data.text, start_s: node.data.start / 1000, end_s: node.data.end / 1000 }] : []));
}

// ---- ASS ------------------------------------------------------------------------------------

const STYLE_FORMAT = ['Name', 'Fontname', 'Fontsize', 'PrimaryColour', 'SecondaryColour', 'OutlineColour', 'BackColour', 'Bold', 'Italic', 'Underline', 'StrikeOut', 'ScaleX', 'ScaleY', 'Spacing', 'Angle', 'BorderStyle', 'Outline', 'Shadow', 'Alignment', 'MarginL', 'MarginR', 'MarginV', 'Encoding'];
const EVENT_FORMAT = ['Layer', 'Start', 'End', 'Style', 'Name', 'MarginL', 'MarginR', 'MarginV', 'Effect', 'Text'];

/** ASS reads "{…}" as override tags and "\N" etc. as escapes; narration shows them as full-width look-alikes. */
const assSafe = (text: string) => text.replace(/\{/g, '｛').replace(/\}/g, '｝').replace(/\\/g, '＼');

export function toAss(lines: SubtitleLine[], style: SubtitleStyle): string {
  const s = resolveStyle(style);
  const doc: ParsedASS = {
    info: {
      Title: 'AI Story narration',
      ScriptType: 'v4.00+',
      // 2 = no automatic wrapping: lines are already measured to fit, and a wrap would hide a bug.
      WrapStyle: '2',
      PlayResX: String(s.width),
      PlayResY: String(s.height),
      ScaledBorderAndShadow: 'yes',
      Collisions: 'Normal',
    },
    styles: {
      format: STYLE_FORMAT,
      style: [{
        Name: 'Default', Fontname: CJK_FONT_FAMILY, Fontsize: String(s.fontSize),
        PrimaryColour: s.primaryColour, SecondaryColour: '&H000000FF', OutlineColour: s.outlineColour, BackColour: '&H80000000',
        Bold: '0', Italic: '0', Underline: '0', StrikeOut: '0', ScaleX: '100', ScaleY: '100', Spacing: '0', Angle: '0',
        // Bottom centre (numpad layout), lifted by the safe area.
        BorderStyle: '1', Outline: String(s.outline), Shadow: '0', Alignment: '2',
        MarginL: String(s.marginL), MarginR: String(s.marginR), MarginV: String(s.marginV), Encoding: '1',
      }],
    },
    events: {
      format: EVENT_FORMAT,
      comment: [],
      dialogue: lines.map((l) => {
        const text = assSafe(l.text);
        return {
          Layer: 0, Start: l.start_s, End: l.end_s, Style: 'Default', Name: '', MarginL: 0, MarginR: 0, MarginV: 0,
          Text: { raw: text, combined: text, parsed: [{ tags: [], text, drawing: [] }] },
        };
      }),
    },
  };
  return stringifyAss(doc);
}

export interface ParsedAssFile {
  width: number;
  height: number;
  fontName: string;
  fontSize: number;
  outline: number;
  alignment: number;
  marginV: number;
  lines: SubtitleLine[];
}

/** Reads back what toAss wrote (or a user's edit of it): the Default style and the dialogue text without tags. */
export function parseAss(ass: string): ParsedAssFile {
  const doc = parseAssText(ass);
  const style = doc.styles.style.find((x) => x.Name === 'Default') ?? doc.styles.style[0];
  return {
    width: Number(doc.info.PlayResX),
    height: Number(doc.info.PlayResY),
    fontName: style?.Fontname ?? '',
    fontSize: Number(style?.Fontsize),
    outline: Number(style?.Outline),
    alignment: Number(style?.Alignment),
    marginV: Number(style?.MarginV),
    lines: doc.events.dialogue.map((d) => ({ text: d.Text.combined, start_s: d.Start, end_s: d.End })),
  };
}
