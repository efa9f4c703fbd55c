import { describe, expect, test } from 'vitest';
import { diffStats, diffText, splitSentences, type DiffPart } from './diff';

const before = (parts: DiffPart[]) => parts.filter((p) => p.type !== 'added').map((p) => p.text).join('');
const after = (parts: DiffPart[]) => parts.filter((p) => p.type !== 'removed').map((p) => p.text).join('');

describe('diffText', () => {
  test('splits Chinese and English sentences, keeping their punctuation and line breaks', () => {
    expect(splitSentences('第一句。第二句！\n第三句？ end. 最后')).toEqual(['第一句。', '第二句！\n', '第三句？ ', 'end. 最后']);
  });

  test('a one-word change inside a sentence shows as that word only', () => {
    const parts = diffText('黑洞是时空中引力极强的区域。连光都无法逃脱。', '黑洞是宇宙中引力极强的区域。连光都无法逃脱。');
    expect(parts).toEqual([
      { type: 'equal', text: '黑洞是' },
      { type: 'removed', text: '时空' },
      { type: 'added', text: '宇宙' },
      { type: 'equal', text: '中引力极强的区域。连光都无法逃脱。' },
    ]);
  });

  test.each([
    ['', ''],
    ['', '全新的一段文案。'],
    ['被删掉的一段。', ''],
    ['同样的文字。', '同样的文字。'],
    ['第一段。\n第二段。\n第三段。', '第二段。\n新的第三段！\n第四段。'],
    ['emoji 🎬 和 🇨🇳 不会被拆坏。', 'emoji 🎬 与 🇨🇳 不会被拆坏！'],
  ])('both sides rebuild exactly from the parts (%j → %j)', (a, b) => {
    const parts = diffText(a, b);
    expect(before(parts)).toBe(a);
    expect(after(parts)).toBe(b);
    expect(parts.every((p) => p.text.length > 0)).toBe(true);
  });

  test('counts added and removed characters, not UTF-16 units', () => {
    expect(diffStats(diffText('猫🐱', '狗🐶'))).toEqual({ added: 2, removed: 2 });
  });

  test('a very long rewrite still answers quickly, as one replaced block when too big to align', () => {
    const a = Array.from({ length: 3000 }, (_, i) => `第${i}句。`).join('');
    const b = Array.from({ length: 3000 }, (_, i) => `句子${i}！`).join('');
    const started = performance.now();
    const parts = diffText(a, b);
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(before(parts)).toBe(a);
    expect(after(parts)).toBe(b);
    expect(parts.map((p) => p.type)).toEqual(['removed', 'added']);
  });
});
