import { describe, expect, it } from 'vitest';
import { nameIn } from './bilingual-name';

describe('nameIn', () => {
  it("shows a shipped name in the reader's language and other names as typed", () => {
    expect(nameIn('默认模板 / Default', 'zh-CN')).toBe('默认模板');
    expect(nameIn('默认模板 / Default', 'en')).toBe('Default');
    expect(nameIn('离线演示模型 / Offline demo model', 'zh-CN')).toBe('离线演示模型');
    expect(nameIn('离线演示模型 / Offline demo model', 'en')).toBe('Offline demo model');
    expect(nameIn('我的模板 v2', 'en')).toBe('我的模板 v2');
    expect(nameIn('A / B', 'zh-CN')).toBe('A / B');
  });
});
