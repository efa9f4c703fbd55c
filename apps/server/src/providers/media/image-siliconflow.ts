/**
 * SiliconFlow images (https://docs.siliconflow.cn/cn/api-reference/images/images-generations, 2025):
 * `POST {api_url}/images/generations` with `image_size` "WxH" and `batch_size` (1–4) →
 * `{ images: [{ url }], timings, seed }`; URLs last one hour. Errors are `{ code, message, data }`,
 * except 401, which is the bare text "Invalid token".
 */
import type { GeneratedImage, ImageAdapter, ImageProviderConfig } from './image-adapter.ts';
import { checkWith, MAX_TEST_TIMEOUT_S } from './media-connection-check.ts';
import { vendorImageSize } from './image-sizes.ts';
import { callJson, trimSlash, type VendorError } from './media-http.ts';
import { MediaProviderError } from './errors.ts';

const MAX_BATCH = 4;

export function siliconflowVendorError(status: number, json: unknown, text: string): VendorError {
  const body = json as { code?: number | string; message?: string; error?: { message?: string } } | undefined;
  const message = body?.message ?? body?.error?.message ?? (text || 'no message');
  // SiliconFlow words refusals rather than coding them consistently; its review says "sensitive".
  const moderation = status === 400 && /sensitive|content review|moderation|违规|敏感/i.test(message);
  return { message, vendorCode: body?.code !== undefined ? String(body.code) : undefined, moderation };
}

export const siliconflowImageAdapter: ImageAdapter = {
  api_format: 'siliconflow',
  // `image`: a URL or a base64 data URI; the studio's media is private, so it sends the latter.
  acceptsReferenceImage: true,

  async generate(provider, req, opts) {
    const size = vendorImageSize('siliconflow', provider.model_name, req);
    opts.onStatus?.({ status: 'running' });
    const images: GeneratedImage[] = [];
    while (images.length < req.n) {
      const body: Record<string, unknown> = {
        model: provider.model_name,
        prompt: req.prompt,
        image_size: size.param,
        batch_size: Math.min(MAX_BATCH, req.n - images.length),
      };
      // Image-to-image models (Kolors) take the reference as `image` (a URL or data URI).
      if (req.reference_image_url) body.image = req.reference_image_url;
      const json = await callJson(`${trimSlash(provider.api_url)}/images/generations`, { method: 'POST', headers: auth(provider), body }, {
        signal: opts.signal,
        timeoutMs: provider.timeout_s * 1000,
        vendorError: siliconflowVendorError,
      });
      const list = (json as { images?: unknown; data?: unknown }).images ?? (json as { data?: unknown }).data;
      if (!Array.isArray(list) || list.length === 0) throw new MediaProviderError('bad_response', 'The provider answered without images (no `images`).');
      for (const item of list as { url?: unknown }[]) {
        if (typeof item.url !== 'string') throw new MediaProviderError('bad_response', 'An image in the answer has no `url`.');
        images.push({ url: item.url });
      }
    }
    return { images, usage: { images: images.length } };
  },

  // GET /models is documented, authenticated and free.
  testConnection: (provider) =>
    checkWith('listed the models', () =>
      callJson(`${trimSlash(provider.api_url)}/models`, { method: 'GET', headers: auth(provider) }, {
        signal: AbortSignal.timeout(MAX_TEST_TIMEOUT_S * 1000 + 1000),
        timeoutMs: Math.min(provider.timeout_s, MAX_TEST_TIMEOUT_S) * 1000,
        vendorError: siliconflowVendorError,
        retries: 0,
        idempotent: true,
      }),
    ),
};

function auth(provider: ImageProviderConfig): Record<string, string> {
  return { authorization: `Bearer ${provider.api_key}` };
}
