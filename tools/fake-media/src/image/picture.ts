import { createHash } from 'node:crypto';
import sharp from 'sharp';

/**
 * A real PNG whose content follows from the prompt, the image's index and the seed: a background and
 * a few blocks coloured and placed by a hash, so two prompts give two different images and tests can
 * compare what they stored with what was served. Flat areas keep encoding cheap at vendor sizes.
 */
export async function pictureFor(prompt: string, index: number, seed: number, width: number, height: number): Promise<Buffer> {
  const h = createHash('sha256').update(`${prompt}\u0000${index}\u0000${seed}`).digest();
  const colour = (o: number) => ({ r: h[o], g: h[o + 1], b: h[o + 2] });
  const blocks = [0, 1, 2, 3].map((i) => {
    const bw = Math.max(1, Math.round(width * (0.15 + (h[6 + i] / 255) * 0.4)));
    const bh = Math.max(1, Math.round(height * (0.1 + (h[10 + i] / 255) * 0.3)));
    return {
      input: { create: { width: bw, height: bh, channels: 3 as const, background: colour(14 + i * 3) } },
      left: Math.round((width - bw) * (h[26 + i] / 255)),
      top: Math.round((height - bh) * (h[22 + i] / 255)),
    };
  });
  return sharp({ create: { width, height, channels: 3, background: colour(3) } })
    .composite(blocks)
    .png({ compressionLevel: 3 })
    .toBuffer();
}
