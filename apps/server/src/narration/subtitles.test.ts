import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseAssLib } from 'ass-compiler';
import { parseSync } from 'subtitle';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CJK_FONT_FILE } from '../media/cjk-font.ts';
import { run } from './exec.ts';
import { splitSentences } from './sentences.ts';
import { parseAss, parseSrt, resolveStyle, SAFE_AREAS, subtitleLines, toAss, toSrt, type SubtitleLine, type SubtitleStyle } from './subtitles.ts';

const NARRATION =
  '在一个遥远的小山村里，住着一位年迈的老木匠，他每天清晨都会坐在院子里那棵已经活了三百多年的老槐树下面慢慢地雕刻着一只永远也不会完成的木头小鸟。' +
  '孩子们问他：“爷爷，这只鸟什么时候能飞？”老人笑了笑。' +
  'He said: "When the wind remembers its name, the bird will fly far away from here." 然后他继续雕刻。';
const STYLE: SubtitleStyle = { width: 360, height: 640, preset: 'douyin' };

// Timings as the narration stage measures them: sentences with pauses between.
const SENTENCES = splitSentences(NARRATION).map((text, i) => ({ text, start_s: i * 4, end_s: i * 4 + 3.5 }));

/** Width as libass draws it, measured here independently with fontkit (Fontsize = winAscent + winDescent). */
const font = createRequire(import.meta.url)('fontkit').openSync(CJK_FONT_FILE, 'NotoSansCJKsc-Regular');
function renderedWidth(text: string, fontSize: number, outline: number): number {
  return (font.layout(text).advanceWidth * fontSize) / (font['OS/2'].winAscent + font['OS/2'].winDescent) + 2 * outline;
}

function expectCovers(whole: string, parts: string[]) {
  let at = 0;
  for (const p of parts) {
    const found = whole.indexOf(p, at);
    expect(found, `"${p}" after ${at} in "${whole}"`).toBeGreaterThanOrEqual(at);
    expect(whole.slice(at, found).trim()).toBe('');
    at = found + p.length;
  }
  expect(whole.slice(at).trim()).toBe('');
}

function expectOrdered(lines: SubtitleLine[]) {
  let previousEnd = 0;
  for (const l of lines) {
    expect(l.start_s).toBeGreaterThanOrEqual(previousEnd);
    expect(l.end_s).toBeGreaterThan(l.start_s);
    previousEnd = l.end_s;
  }
}

describe('subtitle lines', () => {
  const lines = subtitleLines(SENTENCES, STYLE);
  const s = resolveStyle(STYLE);

  test('no line is wider than the frame between the safe-area margins, measured with the font', () => {
    expect(lines.length).toBeGreaterThan(SENTENCES.length);
    for (const l of lines) {
      expect(renderedWidth(l.text, s.fontSize, s.outline), l.text).toBeLessThanOrEqual(STYLE.width - s.marginL - s.marginR);
    }
  });

  test('the lines of each sentence are its text, split only at whitespace or between characters', () => {
    for (const sentence of SENTENCES) {
      const own = lines.filter((l) => l.start_s >= sentence.start_s && l.end_s <= sentence.end_s);
      expectCovers(sentence.text, own.map((l) => l.text));
    }
    expect(lines.map((l) => l.text).join('').replace(/\s+/g, '')).toBe(NARRATION.replace(/\s+/g, ''));
  });

  test('Chinese lines break after punctuation when the clause fits, and never start with a closing mark', () => {
    const texts = lines.map((l) => l.text);
    expect(texts).toContain('在一个遥远的小山村里，');
    // The closing quote stays with its clause; the two-character clause joins its neighbour.
    expect(texts).toContain('这只鸟什么时候能飞？”');
    expect(texts).toContain('孩子们问他：“爷爷，');
    for (const l of lines) expect(l.text).not.toMatch(/^[，。！？：；、”」）,.!?]/);
    // Latin text wraps between words.
    for (const l of lines.filter((x) => /[A-Za-z]/.test(x.text))) {
      const i = NARRATION.indexOf(l.text);
      expect(/[A-Za-z]/.test(NARRATION[i - 1] ?? ' ') && /[A-Za-z]/.test(l.text[0])).toBe(false);
    }
  });

  test('times increase, do not overlap, fill each sentence, and split it in proportion to spoken characters', () => {
    expectOrdered(lines);
    for (const sentence of SENTENCES) {
      const own = lines.filter((l) => l.start_s >= sentence.start_s && l.end_s <= sentence.end_s);
      expect(own[0].start_s).toBe(sentence.start_s);
      expect(own.at(-1)!.end_s).toBe(sentence.end_s);
      for (let i = 1; i < own.length; i++) expect(own[i].start_s).toBe(own[i - 1].end_s);
    }
    const first = lines.filter((l) => l.end_s <= SENTENCES[0].end_s);
    const count = (t: string) => (t.match(/[\p{L}\p{N}]/gu) ?? []).length;
    const total = first.reduce((a, l) => a + count(l.text), 0);
    for (const l of first) expect(l.end_s - l.start_s).toBeCloseTo((3.5 * count(l.text)) / total, 2);
  });

  test('SRT written with the subtitle library parses back identically', () => {
    const srt = toSrt(lines);
    expect(srt).toContain('00:00:00,000 --> ');
    const cues = parseSync(srt).filter((n) => n.type === 'cue');
    expect(cues).toHaveLength(lines.length);
    expect(parseSrt(srt)).toEqual(lines);
  });

  test('ASS written with ass-compiler parses back with the frame, the font and the safe area', () => {
    const ass = toAss(lines, STYLE);
    const doc = parseAssLib(ass);
    expect(doc.info.PlayResX).toBe('360');
    expect(doc.info.PlayResY).toBe('640');
    expect(doc.styles.style[0].Fontname).toBe('Noto Sans CJK SC');
    const back = parseAss(ass);
    expect(back).toMatchObject({ width: 360, height: 640, fontName: 'Noto Sans CJK SC', fontSize: s.fontSize, alignment: 2, marginV: Math.round(640 * SAFE_AREAS.douyin.bottom) });
    expect(back.lines.map((l) => l.text)).toEqual(lines.map((l) => l.text));
    // ASS keeps centiseconds.
    back.lines.forEach((l, i) => {
      expect(l.start_s).toBeCloseTo(lines[i].start_s, 1);
      expect(l.end_s).toBeCloseTo(lines[i].end_s, 1);
    });
    expectOrdered(back.lines);
  });

  test('ASS override braces in the narration are shown, not executed', () => {
    const ass = toAss([{ text: '看{\\b1}这里', start_s: 0, end_s: 1 }], STYLE);
    expect(parseAss(ass).lines[0].text).toBe('看｛＼b1｝这里');
  });

  test('emoji a model wrote are left out of the lines, so the burned subtitles show no empty boxes', () => {
    const sentence = '窗外下起了小雨🌧️！他笑了 👨‍👩‍👦 ❤️ 终于回家。';
    const texts = subtitleLines([{ text: sentence, start_s: 0, end_s: 3 }], STYLE).map((l) => l.text);
    expect(texts.join('')).toBe('窗外下起了小雨！他笑了 终于回家。');
    for (const ch of texts.join('')) expect(font.hasGlyphForCodePoint(ch.codePointAt(0)), ch).toBe(true);
  });
});

describe('rendered by libass (ffmpeg subtitles filter)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'subtitles-test-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Renders each line once on black and returns, per line, the bright pixels' bounding box. */
  async function render(ass: string, lines: SubtitleLine[]) {
    const file = path.join(dir, `s-${Math.random().toString(36).slice(2)}.ass`);
    await writeFile(file, ass);
    const fps = 10;
    const duration = Math.max(...lines.map((l) => l.end_s)) + 0.2;
    const { stdout } = await run('ffmpeg', ['-hide_banner', '-v', 'error', '-f', 'lavfi', '-i', `color=c=black:s=${STYLE.width}x${STYLE.height}:r=${fps}:d=${duration}`,
      '-vf', `subtitles=filename=${file}`, '-f', 'rawvideo', '-pix_fmt', 'gray', '-']);
    const frameBytes = STYLE.width * STYLE.height;
    return lines.map((l) => {
      const index = Math.floor(((l.start_s + l.end_s) / 2) * fps);
      const frame = stdout.subarray(index * frameBytes, (index + 1) * frameBytes);
      let minX = Infinity, maxX = -1, maxY = -1;
      for (let y = 0; y < STYLE.height; y++) {
        for (let x = 0; x < STYLE.width; x++) {
          if (frame[y * STYLE.width + x] > 128) {
            minX = Math.min(minX, x);
            maxX = Math.max(maxX, x);
            maxY = Math.max(maxY, y);
          }
        }
      }
      return { minX, maxX, maxY };
    });
  }

  test('every line is drawn inside the side margins and above the bottom safe area', async () => {
    const lines = subtitleLines(SENTENCES, STYLE).slice(0, 6);
    const boxes = await render(toAss(lines, STYLE), lines);
    const s = resolveStyle(STYLE);
    for (const [i, box] of boxes.entries()) {
      expect(box.maxX, `line "${lines[i].text}" was not drawn`).toBeGreaterThan(0);
      expect(box.minX, lines[i].text).toBeGreaterThanOrEqual(s.marginL);
      expect(box.maxX, lines[i].text).toBeLessThan(STYLE.width - s.marginR);
      expect(box.maxY, lines[i].text).toBeLessThan(STYLE.height - s.marginV);
    }
  });

  test('the same check catches a line that was not split', async () => {
    const tooWide = [{ text: SENTENCES[0].text, start_s: 0, end_s: 1 }];
    const [box] = await render(toAss(tooWide, STYLE), tooWide);
    expect(box.minX === 0 || box.maxX === STYLE.width - 1).toBe(true);
  });
});
