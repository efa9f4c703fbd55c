import { describe, expect, it } from 'vitest';
import { replaceSentence, shotOffsets } from './service.ts';

describe('replaceSentence', () => {
  it.each([
    ['雨夜。猫在发抖。女孩走来。', 1, '猫躲在墙角。', '雨夜。猫躲在墙角。女孩走来。'],
    ['雨夜。\n猫在发抖。', 1, '  猫睡了。 ', '雨夜。\n猫睡了。'],
    ['It rained. A cat shivered.', 0, 'It poured.', 'It poured. A cat shivered.'],
    // The same sentence twice: the second one is replaced, not the first.
    ['好。好。', 1, '不好。', '好。不好。'],
  ])('replaces sentence %#, keeping what lies between sentences', (text, index, next, expected) => {
    expect(replaceSentence(text, index, next)).toBe(expected);
  });

  it('answers null for a sentence that does not exist', () => {
    expect(replaceSentence('一句。', 1, '两句。')).toBeNull();
    expect(replaceSentence('一句。', -1, '两句。')).toBeNull();
  });
});

describe('shotOffsets', () => {
  it('starts each shot where the lengths before it end', () => {
    expect([...shotOffsets([{ id: 'a', durationSeconds: 2.5 }, { id: 'b', durationSeconds: 3 }, { id: 'c', durationSeconds: 1 }])]).toEqual([
      ['a', 0],
      ['b', 2.5],
      ['c', 5.5],
    ]);
  });
});
