import type { ImageItem } from '@ai-story/contracts';
import { describe, expect, test } from 'vitest';
import { namesFrom } from '../images/service.ts';
import { estimateOf, markChosen, promptWithCharacters } from './image.ts';

const img = (id: string, shot: string): ImageItem => ({ id, shot_id: shot, media_id: id, url: `/m/${id}`, thumb_url: null, width: 9, height: 16, chosen: false, source: 'offline' });

describe('the image stage rules', () => {
  test("a shot naming a character gets that character's look in its prompt; others are left alone", () => {
    const cast = [{ name: '老人', look: '白发、深蓝毛衣' }, { name: '女孩', look: '红色雨衣' }, { name: '猫', look: '' }];
    expect(promptWithCharacters('街角的钟表店', '老人低头修表', cast)).toBe('街角的钟表店\n老人：白发、深蓝毛衣');
    expect(promptWithCharacters('海边', '老人和女孩看海，猫在旁边', cast)).toBe('海边\n老人：白发、深蓝毛衣；女孩：红色雨衣');
    expect(promptWithCharacters('森林', '无人的森林', cast)).toBe('森林');
  });

  test('the pick of each shot is chosen; a shot without a (still existing) pick uses its first candidate', () => {
    const images = [img('a1', 'a'), img('a2', 'a'), img('b1', 'b'), img('b2', 'b')];
    const out = markChosen(images, new Map([['a', 'a2'], ['b', 'gone']]));
    expect(out.filter((i) => i.chosen).map((i) => i.id)).toEqual(['a2', 'b1']);
  });

  test('the estimate is shots × candidates × price per image', () => {
    expect(estimateOf(8, 2, 0.2)).toEqual({ images: 16, cost: 3.2 });
    expect(estimateOf(8, 1, 0)).toEqual({ images: 8, cost: 0 });
  });

  test('without a model, names the storyboard repeats are offered, the longer of two overlapping ones kept', () => {
    const shots = [
      { sceneDescription: '小女孩站在门口', narrationText: '老人抬起头', speaker: null },
      { sceneDescription: '小女孩递过钟', narrationText: '老人笑了', speaker: null },
      { sceneDescription: '海边', narrationText: '天黑了', speaker: null },
    ];
    expect(namesFrom(shots).map((c) => c.name).sort()).toEqual(['小女孩', '老人'].sort());
  });
});
