import { describe, expect, it } from 'vitest';
import { StreamedItems } from './item-stream.ts';

const answer = 'Here it is:\n```json\n{"shots":[{"n":1,"t":"雨夜"},{"n":2,"t":"灯塔 🐋"},{"n":3,"t":"end"}]}\n```';

describe('StreamedItems', () => {
  it('yields only complete items, in order, wherever the stream is cut', () => {
    for (let cut = 0; cut <= answer.length; cut++) {
      const items = new StreamedItems('shots');
      items.write(answer.slice(0, cut));
      const all = items.write(answer.slice(cut));
      expect(all).toEqual([{ n: 1, t: '雨夜' }, { n: 2, t: '灯塔 🐋' }, { n: 3, t: 'end' }]);
    }
  });

  it('never yields a half-written item', () => {
    const items = new StreamedItems('shots');
    const seen: number[] = [];
    for (const ch of answer) seen.push(items.write(ch).length);
    const firstComplete = answer.indexOf('}') + 1;
    expect(seen.slice(0, firstComplete - 1).every((n) => n === 0)).toBe(true);
    expect(seen.at(-1)).toBe(3);
  });

  it('reads a bare list and falls back to mending broken JSON', () => {
    expect(new StreamedItems('shots').write('[{"a":1},{"a":2}]')).toEqual([{ a: 1 }, { a: 2 }]);
    const broken = new StreamedItems('shots');
    broken.write('{"shots":[{"a":1,},{"a":2},');
    expect(broken.write('{"a":3')).toEqual([{ a: 1 }, { a: 2 }]);
  });
});
