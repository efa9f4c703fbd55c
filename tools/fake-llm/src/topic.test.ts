import { describe, expect, it } from 'vitest';
import { expectedText } from './answer.ts';
import { buildStoryboard } from './json-output.ts';

const rewritePrompt = (topic: string) => `请把下面的原始文案改写成一段适合短视频旁白的故事文案。\n\n风格：叙事\n\n原始文案：\n${topic}`;
const wellFormed = (s: string) => !/\uFFFD|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

describe('the offline demo tells the story it was given', () => {
  it('a rewrite of a topic about a lighthouse keeper and a lost whale is about them', () => {
    const text = expectedText({ model: 'ai-story-demo?tokens=300', messages: [{ role: 'user', content: rewritePrompt('灯塔守护人阿海在暴风雨的夜里救起一头迷路的鲸鱼。') }] });
    for (const noun of ['灯塔', '阿海', '鲸鱼']) expect(text).toContain(noun);
    expect(text).not.toMatch(/橘猫|机器人阿七/);
  });

  it('an English topic keeps its own words too', () => {
    const text = expectedText({ model: 'ai-story-demo?tokens=200', messages: [{ role: 'user', content: rewritePrompt('A lighthouse keeper finds a lost whale.') }] });
    for (const noun of ['lighthouse', 'keeper', 'whale']) expect(text).toContain(noun);
  });

  it('a storyboard of a short text is padded with sentences about that text, and never cuts an emoji', () => {
    const { shots } = buildStoryboard([{ role: 'user', content: '分镜。\n故事文案：\n灯塔守护人阿海在暴风雨的夜里找到了妈妈的老相机📷。' }], 7);
    expect(shots.length).toBeGreaterThanOrEqual(3);
    expect(shots.slice(1).map((s) => s.narration_text).join('')).toMatch(/灯塔|阿海|相机|暴风|妈妈|夜里/);
    // 23 characters, then the emoji across the 24-unit cut of the scene's gist.
    expect(shots[0].scene_description).toContain('相机');
    for (const s of shots) for (const v of [s.scene_description, s.image_prompt, s.narration_text]) expect(wellFormed(v)).toBe(true);
  });
});
