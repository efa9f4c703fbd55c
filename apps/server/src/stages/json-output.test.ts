import { describe, expect, it } from 'vitest';
import { StageOutputError } from './definition.ts';
import { completedItems, parseJsonOutput } from './json-output.ts';

describe('parseJsonOutput', () => {
  it('accepts clean, fenced-with-prose and slightly broken JSON', () => {
    expect(parseJsonOutput('{"shots":[{"a":1}]}')).toEqual({ shots: [{ a: 1 }] });
    expect(parseJsonOutput('好的，以下是分镜：\n```json\n{"shots":[{"a":1}]}\n```\n希望对你有帮助！')).toEqual({ shots: [{ a: 1 }] });
    expect(parseJsonOutput("{shots:[{a:1,},{'b':'x'},],}")).toEqual({ shots: [{ a: 1 }, { b: 'x' }] });
  });

  it('fails with a reason when there is no JSON at all', () => {
    expect(() => parseJsonOutput('抱歉，我无法完成这个任务。')).toThrow(StageOutputError);
    expect(() => parseJsonOutput('抱歉，我无法完成这个任务。')).toThrow(/no object/);
  });
});

describe('completedItems', () => {
  it('yields items only once the next one has begun, from a stream cut anywhere', () => {
    const full = '```json\n{"shots":[{"n":1,"t":"雨夜"},{"n":2,"t":"街灯"},{"n":3,"t":"回家"}]}\n```';
    const seen: number[] = [];
    for (let i = 1; i <= full.length; i++) {
      const items = completedItems(full.slice(0, i), 'shots') as { n: number }[];
      expect(items.map((x) => x.n)).toEqual(items.map((_, j) => j + 1)); // always a prefix, never a half item
      seen.push(items.length);
    }
    expect(Math.max(...seen)).toBe(2);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
  });
});
