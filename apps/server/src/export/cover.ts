/**
 * The export's cover: a picture (an image, or a frame of the video) filled to the output size with the
 * story's title set on it — sharp composites an SVG, whose text librsvg shapes with the system's
 * Noto Sans CJK through fontconfig. PNG or JPEG by the extension of `out`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sharp } from '../media/sharp.ts';
import { drawableText } from '../media/cjk-font.ts';
import { escapeXml, SVG_FONT_FAMILY, wrapText } from '../media/svg-text.ts';
import { runMediaTool } from './ffmpeg-process.ts';

export interface CoverInput {
  image?: string;
  videoFrameAt?: { file: string; t: number };
  title: string;
  width: number;
  height: number;
  /** .png, .jpg or .jpeg */
  out: string;
  ffmpeg?: string;
  signal?: AbortSignal;
}

const MAX_LINES = 3;

export async function renderCover(input: CoverInput): Promise<{ out: string; width: number; height: number; format: 'png' | 'jpeg' }> {
  const ext = path.extname(input.out).toLowerCase();
  const format = ext === '.png' ? 'png' : ext === '.jpg' || ext === '.jpeg' ? 'jpeg' : null;
  if (!format) throw new RangeError(`cover must be .png or .jpg, not ${ext || 'no extension'}`);
  if ((input.image ? 1 : 0) + (input.videoFrameAt ? 1 : 0) !== 1) throw new RangeError('give exactly one of image or videoFrameAt');

  let work: string | null = null;
  const tmp = path.join(path.dirname(input.out), `.${path.basename(input.out)}.${randomBytes(6).toString('hex')}.partial`);
  try {
    let source = input.image!;
    if (input.videoFrameAt) {
      work = await mkdtemp(path.join(os.tmpdir(), 'ai-story-cover-'));
      source = path.join(work, 'frame.png');
      await runMediaTool(
        input.ffmpeg ?? 'ffmpeg',
        ['-hide_banner', '-nostdin', '-y', '-ss', input.videoFrameAt.t.toFixed(3), '-i', input.videoFrameAt.file, '-frames:v', '1', '-update', '1', source],
        { signal: input.signal, timeoutMs: 30_000 },
      );
    }
    const svg = titleSvg(input.title, input.width, input.height);
    const image = sharp(source)
      .resize(input.width, input.height, { fit: 'cover' })
      .composite([{ input: Buffer.from(svg), top: 0, left: 0 }]);
    await (format === 'png' ? image.png() : image.jpeg({ quality: 88, mozjpeg: true })).toFile(tmp);
    await rename(tmp, input.out);
    return { out: input.out, width: input.width, height: input.height, format };
  } finally {
    await rm(tmp, { force: true });
    if (work) await rm(work, { recursive: true, force: true });
  }
}

/** A dark gradient over the lower part and the title, wrapped, in the lower third. */
export function titleSvg(title: string, width: number, height: number): string {
  const fontSize = Math.round(Math.min(width, height) * 0.085);
  const lines = wrapText(drawableText(title.trim()), width * 0.84, fontSize, MAX_LINES);
  const lineHeight = Math.round(fontSize * 1.3);
  const bottom = height * 0.82;
  const firstBaseline = bottom - (lines.length - 1) * lineHeight;
  const text = lines
    .map((l, i) => `<text x="${width / 2}" y="${Math.round(firstBaseline + i * lineHeight)}">${escapeXml(l)}</text>`)
    .join('');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<defs><linearGradient id="shade" x1="0" y1="0" x2="0" y2="1">` +
    `<stop offset="0.5" stop-color="#000" stop-opacity="0"/><stop offset="1" stop-color="#000" stop-opacity="0.7"/>` +
    `</linearGradient></defs>` +
    `<rect width="100%" height="100%" fill="url(#shade)"/>` +
    `<g font-family="${SVG_FONT_FAMILY}" font-weight="700" font-size="${fontSize}" text-anchor="middle" fill="#fff"` +
    ` stroke="#000" stroke-opacity="0.6" stroke-width="${Math.max(2, Math.round(fontSize / 14))}" paint-order="stroke">${text}</g>` +
    `</svg>`
  );
}

