import { describe, expect, it } from 'vitest';
import { setNameIn } from './set-name';

describe('setNameIn', () => {
  it("shows the shipped set's name in the reader's language and other names as typed", () => {
    expect(setNameIn('默认模板 / Default', 'zh-CN')).toBe('默认模板');
    expect(setNameIn('默认模板 / Default', 'en')).toBe('Default');
    expect(setNameIn('我的模板 v2', 'en')).toBe('我的模板 v2');
    expect(setNameIn('A / B', 'zh-CN')).toBe('A / B');
  });
});
