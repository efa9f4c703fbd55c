import { describe, expect, it } from 'vitest';
import { REASONS, reasonCode } from './status-reasons.ts';

describe('status reason codes', () => {
  it('names every known reason by its code and passes other words on as the detail to quote', () => {
    for (const [code, text] of Object.entries(REASONS)) expect(reasonCode(text)).toEqual({ code, params: {} });
    expect(reasonCode('Content rejected by moderation: 涉及敏感内容')).toEqual({ code: 'run_failed', params: { detail: 'Content rejected by moderation: 涉及敏感内容' } });
    expect(reasonCode(null)).toEqual({ code: null, params: {} });
  });
});
