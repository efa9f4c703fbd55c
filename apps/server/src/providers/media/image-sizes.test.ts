import { describe, expect, test } from 'vitest';
import { imageSizeFor, targetSize, vendorImageSize } from './image-sizes.ts';

describe('targetSize', () => {
  test.each([
    ['9:16', '720p', 720, 1280], ['16:9', '1080p', 1920, 1080], ['1:1', '720p', 720, 720], ['4:3', '720p', 960, 720], ['3:4', '1080p', 1080, 1440],
  ] as const)('%s %s → %i×%i', (aspect, resolution, width, height) => {
    expect(targetSize(aspect, resolution)).toEqual({ width, height });
  });
});

describe('vendor sizes', () => {
  test.each([
    ['openai', 'dall-e-3', '9:16', '720p', '1024x1792', false],
    ['openai', 'dall-e-3', '16:9', '1080p', '1792x1024', false],
    ['openai', 'dall-e-3', '4:3', '720p', '1024x1024', false],
    ['openai', 'gpt-image-1', '3:4', '720p', '1024x1536', false],
    ['openai', 'cogview-4', '9:16', '720p', '768x1344', false],
    ['openai', 'doubao-seedream-3-0-t2i', '9:16', '720p', '720x1280', true],
    ['openai', 'doubao-seedream-3-0-t2i', '9:16', '1080p', '1080x1920', true],
    ['siliconflow', 'Kwai-Kolors/Kolors', '9:16', '720p', '720x1280', true],
    ['siliconflow', 'Kwai-Kolors/Kolors', '3:4', '720p', '768x1024', false],
    ['siliconflow', 'black-forest-labs/FLUX.1-schnell', '16:9', '720p', '1024x576', false],
    ['siliconflow', 'Qwen/Qwen-Image', '16:9', '1080p', '1664x928', false],
    ['dashscope', 'wanx-v1', '9:16', '720p', '720*1280', true],
    ['dashscope', 'wanx-v1', '1:1', '1080p', '1024*1024', false],
    ['dashscope', 'wanx2.1-t2i-turbo', '9:16', '720p', '720*1280', true],
    ['dashscope', 'wanx2.1-t2i-turbo', '9:16', '1080p', '808*1440', false],
  ] as const)('%s %s %s %s → %s', (format, model, aspect, resolution, param, exact) => {
    const size = imageSizeFor(format, model, aspect, resolution);
    expect(size.param).toBe(param);
    expect(size.exact).toBe(exact);
    expect(size.rule.length).toBeGreaterThan(0);
  });

  test('a free range keeps the shape and stays inside the bounds', () => {
    const s = vendorImageSize('dashscope', 'wan2.2-t2i-flash', { width: 360, height: 640 });
    expect(s.width).toBeGreaterThanOrEqual(512);
    expect(s.height).toBeLessThanOrEqual(1440);
    expect(Math.abs(s.width / s.height - 360 / 640)).toBeLessThan(0.02);
  });
});
