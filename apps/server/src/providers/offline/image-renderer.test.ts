import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { wrapText } from '../../media/svg-text.ts';
import { composeOfflineSvg, renderOfflineImage } from './image-renderer.ts';

// Full size: at 360 px wide the caption's strokes are too thin to tell apart from missing-glyph boxes.
const W = 720;
const H = 1280;
// The caption sits in the upper middle, where every camera move keeps it on screen.
const TEXT_AREA = { left: Math.round(W * 0.29), top: Math.round(H * 0.29), width: Math.round(W * 0.42), height: Math.round(H * 0.2) };

async function raw(png: Buffer, area?: typeof TEXT_AREA): Promise<Buffer> {
  const img = sharp(png).removeAlpha();
  return (area ? img.extract(area) : img).raw().toBuffer();
}

function meanAbsDiff(a: Buffer, b: Buffer): number {
  expect(a.length).toBe(b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

function meanLuminance(rgb: Buffer): number {
  let sum = 0;
  for (let i = 0; i < rgb.length; i += 3) sum += 0.2126 * rgb[i] + 0.7152 * rgb[i + 1] + 0.0722 * rgb[i + 2];
  return sum / (rgb.length / 3);
}

describe('renderOfflineImage', () => {
  test('writes a PNG of the requested size', async () => {
    const png = await renderOfflineImage({ scene: '清晨的海边，灯塔', width: W, height: H });
    const meta = await sharp(png).metadata();
    expect(meta.format).toBe('png');
    expect([meta.width, meta.height]).toEqual([W, H]);
  });

  test('emoji in the scene are left out of the caption rather than drawn as boxes', () => {
    const svg = composeOfflineSvg({ scene: '雨夜的灯塔🌧️ 👨‍👩‍👦', width: W, height: H });
    const captionText = [...svg.matchAll(/<text [^>]*>([^<]*)<\/text>/g)].map((m) => m[1]).join('');
    expect(captionText).toBe('雨夜的灯塔');
  });

  test('different scenes give different pictures', async () => {
    const a = await raw(await renderOfflineImage({ scene: '夜晚，雨中的城市街道', width: W, height: H }));
    const b = await raw(await renderOfflineImage({ scene: '森林深处的小屋，一只猫坐在门口', width: W, height: H }));
    expect(meanAbsDiff(a, b)).toBeGreaterThan(20);
  });

  test('the same text gives identical bytes', async () => {
    const req = { scene: '月光下，一头鲸跃出海面', narration: '它在找回家的路。', width: W, height: H };
    const [a, b] = await Promise.all([renderOfflineImage(req), renderOfflineImage({ ...req })]);
    expect(a.equals(b)).toBe(true);
  });

  test('the narration and prompt shape the picture too, not only the caption', async () => {
    const scene = '她停下脚步';
    const a = await raw(await renderOfflineImage({ scene, narration: '夜色里下着雨', width: W, height: H }), { left: 0, top: 0, width: W, height: H / 2 });
    const b = await raw(await renderOfflineImage({ scene, narration: '阳光照在海面上', width: W, height: H }), { left: 0, top: 0, width: W, height: H / 2 });
    expect(meanAbsDiff(a, b)).toBeGreaterThan(20);
  });

  test('a rainy night in the city is darker than a clear sunrise at sea', async () => {
    const night = meanLuminance(await raw(await renderOfflineImage({ scene: '夜 雨 城市', width: W, height: H })));
    const sunrise = meanLuminance(await raw(await renderOfflineImage({ scene: '晴朗 日出 海', width: W, height: H })));
    expect(night).toBeLessThan(sunrise * 0.6);
  });

  test('English words pick the same scenery as Chinese ones', async () => {
    const zh = meanLuminance(await raw(await renderOfflineImage({ scene: '', prompt: '夜 月', width: W, height: H })));
    const en = meanLuminance(await raw(await renderOfflineImage({ scene: '', prompt: 'night moon', width: W, height: H })));
    const day = meanLuminance(await raw(await renderOfflineImage({ scene: '', prompt: 'sunny day', width: W, height: H })));
    expect(Math.abs(zh - en)).toBeLessThan(15);
    expect(day).toBeGreaterThan(en * 1.8);
  });
});

describe('CJK text', () => {
  // Renders in a child process whose fontconfig knows no fonts at all: there Pango can only draw
  // "tofu" (missing-glyph boxes), which is what a machine without fonts-noto-cjk would show.
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'offline-image-'));
    await writeFile(path.join(dir, 'empty-fonts.conf'), '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig></fontconfig>\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const first = '夜晚的灯塔与鲸鱼';
  const second = '森林里的猫和小屋';
  // Words that set the scenery, so both captions sit on a dark panel over the same kind of ground.
  const prompt = '黄昏 山';

  async function renderInChild(env: NodeJS.ProcessEnv): Promise<[Buffer, Buffer]> {
    const modulePath = fileURLToPath(new URL('./image-renderer.ts', import.meta.url));
    const script = `
      import { renderOfflineImage } from ${JSON.stringify(modulePath)};
      const out = [];
      for (const scene of ${JSON.stringify([first, second])}) {
        out.push((await renderOfflineImage({ scene, prompt: ${JSON.stringify(prompt)}, width: ${W}, height: ${H} })).toString('base64'));
      }
      process.stdout.write(JSON.stringify(out));`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(timer);
    if (code !== 0) throw new Error(`render child exited ${code}: ${stderr}`);
    const [a, b] = JSON.parse(stdout) as string[];
    return [Buffer.from(a, 'base64'), Buffer.from(b, 'base64')];
  }

  test('glyphs are real: the caption is drawn in strokes, not in the boxes a font-less render draws', async () => {
    const normal = await Promise.all([first, second].map((scene) => renderOfflineImage({ scene, prompt, width: W, height: H })));
    const tofu = await renderInChild({ ...process.env, FONTCONFIG_FILE: path.join(dir, 'empty-fonts.conf') });

    for (let i = 0; i < 2; i++) {
      const real = await raw(normal[i], TEXT_AREA);
      const boxes = await raw(tofu[i], TEXT_AREA);
      // The caption area differs clearly between the two renders…
      expect(meanAbsDiff(real, boxes)).toBeGreaterThan(1.5);
      // …and only the caption: below it the pictures are the same.
      const below = { left: 0, top: Math.round(H * 0.55), width: W, height: H - Math.round(H * 0.55) };
      expect(meanAbsDiff(await raw(normal[i], below), await raw(tofu[i], below))).toBe(0);
      // Ideographs are dense strokes; missing-glyph boxes are thin outlines with tiny hex digits.
      expect(inkPixels(real)).toBeGreaterThan(inkPixels(boxes) * 2);
    }
    // Two different strings of the same length are two different sets of shapes.
    expect(meanAbsDiff(await raw(normal[0], TEXT_AREA), await raw(normal[1], TEXT_AREA))).toBeGreaterThan(1.5);
  });
});

/** Pixels bright enough to be caption text (the panel behind it is dark). */
function inkPixels(rgb: Buffer): number {
  let n = 0;
  for (let i = 0; i < rgb.length; i += 3) if (rgb[i] + rgb[i + 1] + rgb[i + 2] > 600) n++;
  return n;
}

describe('wrapText', () => {
  test('wraps CJK to the width, keeps Latin words whole and never starts a line with a closing mark', () => {
    const lines = wrapText('清晨的海边，日出染红了海面，一座白色灯塔 standing quietly 静静伫立', 280, 20, 10);
    for (const line of lines) expect(line.length).toBeGreaterThan(0);
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.some((l) => /^[，。]/.test(l))).toBe(false);
    expect(lines.join(' ')).toContain('standing');
    expect(lines.join('').replace(/\s/g, '')).toBe('清晨的海边，日出染红了海面，一座白色灯塔standingquietly静静伫立');
  });

  test('a caption longer than the line budget ends with an ellipsis', () => {
    const lines = wrapText('很长的句子'.repeat(40), 200, 20, 3);
    expect(lines).toHaveLength(3);
    expect(lines[2].endsWith('…')).toBe(true);
  });
});
