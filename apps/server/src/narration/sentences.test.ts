import { describe, expect, test } from 'vitest';
import { splitSentences } from './sentences.ts';

/** The exact contract: sentences cover text.trim() in order, separated only by whitespace. */
function expectCovers(text: string, sentences: string[]) {
  const whole = text.trim();
  let at = 0;
  for (const s of sentences) {
    expect(s).toBe(s.trim());
    expect(s.length).toBeGreaterThan(0);
    const gap = whole.slice(at, whole.indexOf(s, at));
    expect(whole.indexOf(s, at)).toBeGreaterThanOrEqual(at);
    expect(gap.trim()).toBe('');
    at += gap.length + s.length;
  }
  expect(at).toBe(whole.length);
}

describe('splitSentences', () => {
  test.each([
    ['今天天气很好。我们去公园吧！你来吗？', ['今天天气很好。', '我们去公园吧！', '你来吗？']],
    ['他说：“我不去。”然后走了。', ['他说：“我不去。”', '然后走了。']],
    ['「走吧！」她喊道；大家都笑了……最后呢', ['「走吧！」', '她喊道；', '大家都笑了……', '最后呢']],
    ['Hello world. It costs 3.14 dollars! Really?! Yes', ['Hello world.', 'It costs 3.14 dollars!', 'Really?!', 'Yes']],
    ['  第一句。\n第二句没有标点\n\n  第三句！  ', ['第一句。', '第二句没有标点', '第三句！']],
    ['真的吗？！', ['真的吗？！']],
    ['Visit example.com today.', ['Visit example.com today.']],
    ['He said "stop." Then left.', ['He said "stop."', 'Then left.']],
  ])('%j splits into %j', (text, expected) => {
    const sentences = splitSentences(text);
    expect(sentences).toEqual(expected);
    expectCovers(text, sentences);
  });

  test('empty and whitespace-only text give no sentences', () => {
    expect(splitSentences('')).toEqual([]);
    expect(splitSentences(' \n\t ')).toEqual([]);
  });

  test('a sentence of punctuation only is kept, never dropped (no character is lost)', () => {
    const text = '好。……！';
    const sentences = splitSentences(text);
    expect(sentences.join('')).toBe(text);
    expectCovers(text, sentences);
  });

  test('characters outside the BMP stay whole', () => {
    const text = '𠮷野家很好吃😀。下一句。';
    expect(splitSentences(text)).toEqual(['𠮷野家很好吃😀。', '下一句。']);
  });
});
