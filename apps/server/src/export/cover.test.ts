import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp, { type Region } from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { renderCover, titleSvg } from './cover.ts';
import { makeClip, tools } from './test-media.ts';

let dir: string;
let clip: string;
const W = 360;
const H = 640;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'cover-test-'));
  clip = makeClip(path.join(dir, 'clip.mp4'), { width: 720, height: 1280, fps: 30, seconds: 1, color: '0x2050A0' });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function pixels(file: string, region: Region): Promise<Buffer> {
  return sharp(file).extract(region).removeAlpha().raw().toBuffer();
}

function whiteCount(buf: Buffer): number {
  let n = 0;
  for (let i = 0; i < buf.length; i += 3) if (buf[i] > 220 && buf[i + 1] > 220 && buf[i + 2] > 220) n++;
  return n;
}

describe('renderCover', () => {
  const titleBand = { left: 0, top: Math.round(H * 0.6), width: W, height: Math.round(H * 0.3) };
  const topBand = { left: 0, top: 0, width: W, height: Math.round(H * 0.4) };

  test('a frame of the video with the CJK title set in the lower third, as PNG at the asked size', async () => {
    const out = path.join(dir, 'cover-shan.png');
    const result = await renderCover({ videoFrameAt: { file: clip, t: 0.5 }, title: '山中的老木匠', width: W, height: H, out, ffmpeg: tools.ffmpeg });
    expect(result).toEqual({ out, width: W, height: H, format: 'png' });
    const meta = await sharp(out).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', W, H]);
    expect(whiteCount(await pixels(out, titleBand))).toBeGreaterThan(400);
    expect(whiteCount(await pixels(out, topBand))).toBe(0);

    // Real glyphs, not the same missing-glyph box for every character: another title of the same
    // length draws different pixels.
    const other = path.join(dir, 'cover-shui.png');
    await renderCover({ videoFrameAt: { file: clip, t: 0.5 }, title: '水边的小鹿们', width: W, height: H, out: other, ffmpeg: tools.ffmpeg });
    expect((await pixels(out, titleBand)).equals(await pixels(other, titleBand))).toBe(false);
  });

  test('an image source, a long title wrapped to at most three lines, written as JPEG', async () => {
    const image = path.join(dir, 'source.png');
    await sharp({ create: { width: 1024, height: 1024, channels: 3, background: '#403020' } }).png().toFile(image);
    const out = path.join(dir, 'cover.jpg');
    await renderCover({ image, title: '很久很久以前，在一座很高很高的山上，住着一位心灵手巧的老木匠和他的小鹿朋友们', width: W, height: H, out });
    const meta = await sharp(out).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', W, H]);
    expect(whiteCount(await pixels(out, { left: 0, top: Math.round(H * 0.5), width: W, height: Math.round(H * 0.4) }))).toBeGreaterThan(400);
    expect(readdirSync(dir).filter((f) => f.includes('partial'))).toEqual([]);
  });

  test('titles wrap between CJK characters but keep Latin words whole, three lines at most, XML escaped', () => {
    const lines = (svg: string) => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    expect(lines(titleSvg('很久很久以前，山里住着一位老木匠 AI Story 2025', W, H))).toEqual(['很久很久以前，山里', '住着一位老木匠 AI', 'Story 2025']);
    const long = lines(titleSvg('山'.repeat(40), W, H));
    expect(long).toHaveLength(3);
    expect(long[2].endsWith('…')).toBe(true);
    expect(lines(titleSvg('<猫 & 狗>', W, H))).toEqual(['&lt;猫 &amp; 狗&gt;']);
  });

  test.each([
    [{ out: 'cover.gif' }, /png or \.jpg/],
    [{ image: 'a.png', videoFrameAt: { file: 'b.mp4', t: 0 } }, /exactly one/],
  ])('refuses %j', async (patch, message) => {
    await expect(renderCover({ image: 'a.png', title: 't', width: W, height: H, out: path.join(dir, 'x.png'), ...patch, ...('out' in patch ? { out: path.join(dir, patch.out) } : {}) })).rejects.toThrow(message);
  });
});
