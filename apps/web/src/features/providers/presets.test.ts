import { CreateProviderBody } from '@ai-story/contracts';
import { describe, expect, it } from 'vitest';
import { PROVIDER_PRESETS, presetOfUrl } from './presets';

describe('provider presets', () => {
  it('cover the common OpenAI-compatible services, each with a URL the API accepts and suggested models', () => {
    expect(PROVIDER_PRESETS.map((p) => p.id)).toEqual(['deepseek', 'dashscope', 'moonshot', 'zhipu', 'siliconflow', 'openrouter', 'ollama']);
    for (const p of PROVIDER_PRESETS) {
      expect(CreateProviderBody.shape.api_url.safeParse(p.api_url).success).toBe(true);
      expect(p.models.length).toBeGreaterThan(0);
    }
  });

  it('recognises a provider by its URL, a trailing slash aside', () => {
    expect(presetOfUrl('https://api.deepseek.com/v1/')?.id).toBe('deepseek');
    expect(presetOfUrl('https://example.com/v1')).toBeUndefined();
  });
});
