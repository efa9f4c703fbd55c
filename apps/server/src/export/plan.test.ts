import { describe, expect, it } from 'vitest';
import type { ShotRow } from '../stages/definition.ts';
import { placeLines, type PlannedShot } from './plan.ts';

const shot = (id: string, duration_s: number, lines: [string, number, number][]): PlannedShot => ({
  shot: { id } as ShotRow,
  picture: { kind: 'image', media_id: `m-${id}` },
  duration_s,
  narration: { media_id: `a-${id}`, duration_s, lines: lines.map(([text, start_s, end_s]) => ({ text, start_s, end_s })) },
  movement: null,
});

describe('placeLines', () => {
  it('shifts each shot’s lines to its start on the final timeline and applies hand edits', () => {
    const shots = [shot('a', 3, [['第一句', 0, 1.2], ['第二句', 1.2, 2.5]]), shot('b', 2, [['第三句', 0.1, 1.8]])];
    const placed = placeLines(shots, [0, 3], { 'b:0': '改过的第三句' });
    expect(placed.map((l) => [l.key, l.text, l.start_s, l.end_s, l.edited])).toEqual([
      ['a:0', '第一句', 0, 1.2, false],
      ['a:1', '第二句', 1.2, 2.5, false],
      ['b:0', '改过的第三句', 3.1, 4.8, true],
    ]);
  });

  it('ends a line where the next begins when a crossfade starts the next shot early: never two lines at once', () => {
    // Shot a's last line runs to its end (3 s); with a 0.4 s crossfade shot b starts at 2.6 s.
    const shots = [shot('a', 3, [['雨夜里，电话亭亮着灯', 0.2, 3]]), shot('b', 2, [['她拿起了听筒', 0, 1.5]])];
    const placed = placeLines(shots, [0, 2.6], {});
    expect(placed.map((l) => [l.start_s, l.end_s])).toEqual([
      [0.2, 2.6],
      [2.6, 4.1],
    ]);
    for (let i = 0; i + 1 < placed.length; i++) expect(placed[i].end_s).toBeLessThanOrEqual(placed[i + 1].start_s);
  });
});
