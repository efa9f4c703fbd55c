/**
 * OpenAI Images API shape (https://platform.openai.com/docs/api-reference/images/create, 2025):
 * `POST {api_url}/images/generations` → `{ created, data: [{ url } | { b64_json }] }`, errors
 * `{ error: { message, type, code } }`, refusals `code: "content_policy_violation"`. Also spoken by
 * Volcengine Seedream (Ark) and Zhipu CogView, with their own size lists (image-sizes.ts).
 */
import type { GeneratedImage, ImageAdapter, ImageProviderConfig } from './image-adapter.ts';
import { checkWith, MAX_TEST_TIMEOUT_S } from './media-connection-check.ts';
import { vendorImageSize } from './image-sizes.ts';
import { callJson, trimSlash, type VendorError } from './media-http.ts';
import { MediaProviderError } from './errors.ts';

export function openaiVendorError(_status: number, json: unknown, text: string): VendorError {
  const err = (json as { error?: { message?: string; code?: string | null; type?: string } } | undefined)?.error;
  const vendorCode = err?.code ?? err?.type ?? undefined;
  return {
    message: err?.message ?? (text || 'no message'),
    vendorCode,
    moderation: vendorCode === 'content_policy_violation' || vendorCode === 'moderation_blocked' || err?.type === 'image_generation_user_error',
  };
}

export const openaiImageAdapter: ImageAdapter = {
  api_format: 'openai',
  // `/images/generations` takes no picture (that is `/images/edits`, another request shape).
  acceptsReferenceImage: false,

  async generate(provider, req, opts) {
    const size = vendorImageSize('openai', provider.model_name, req);
    const model = provider.model_name.toLowerCase();
    // dall-e-3 makes one image per request (n must be 1); gpt-image always answers base64 and rejects
    // response_format; the others default to URLs, which the studio fetches at once.
    const perRequest = model.startsWith('dall-e-3') ? 1 : req.n;
    const body: Record<string, unknown> = { model: provider.model_name, prompt: req.prompt, size: size.param };
    if (!model.startsWith('gpt-image')) body.response_format = 'url';
    opts.onStatus?.({ status: 'running' });
    const images: GeneratedImage[] = [];
    while (images.length < req.n) {
      const n = Math.min(perRequest, req.n - images.length);
      const json = await callJson(`${trimSlash(provider.api_url)}/images/generations`, { method: 'POST', headers: auth(provider), body: { ...body, n } }, {
        signal: opts.signal,
        timeoutMs: provider.timeout_s * 1000,
        vendorError: openaiVendorError,
      });
      const data = (json as { data?: unknown }).data;
      if (!Array.isArray(data) || data.length === 0) throw new MediaProviderError('bad_response', 'The provider answered without images (no `data`).');
      for (const item of data as { url?: unknown; b64_json?: unknown }[]) {
        if (typeof item.b64_json === 'string') images.push({ b64: item.b64_json });
        else if (typeof item.url === 'string') images.push({ url: item.url });
        else throw new MediaProviderError('bad_response', 'An image in the answer has neither `url` nor `b64_json`.');
      }
    }
    return { images, usage: { images: images.length } };
  },

  // GET /models lists models and costs nothing (Zhipu's v4 API has no such list: expect a 404 there).
  testConnection: (provider) =>
    checkWith('listed the models', () =>
      callJson(`${trimSlash(provider.api_url)}/models`, { method: 'GET', headers: auth(provider) }, {
        signal: AbortSignal.timeout(MAX_TEST_TIMEOUT_S * 1000 + 1000),
        timeoutMs: Math.min(provider.timeout_s, MAX_TEST_TIMEOUT_S) * 1000,
        vendorError: openaiVendorError,
        retries: 0,
        idempotent: true,
      }),
    ),
};

function auth(provider: ImageProviderConfig): Record<string, string> {
  return { authorization: `Bearer ${provider.api_key}` };
}
