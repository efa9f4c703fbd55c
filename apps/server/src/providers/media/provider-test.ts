import type { ProviderType } from '@ai-story/contracts';
import type { ConnectionTestResult } from '../connection-test.ts';
import type { ClientProvider } from '../service.ts';
import { imageAdapterFor } from './image-adapter.ts';
import { ttsAdapterFor, type TtsApiFormat } from './tts-adapter.ts';
import { videoAdapterFor, type VideoApiFormat } from './video-adapter.ts';

/**
 * The "test connection" button for a media provider: the adapter of its type and `api_format` checks
 * the credentials with a request that costs nothing (a model list, a task id that cannot exist) —
 * never a generation, a synthesis or a task.
 */
export async function testMediaConnection(type: Exclude<ProviderType, 'llm'>, p: ClientProvider): Promise<ConnectionTestResult> {
  const started = performance.now();
  const latency = () => Math.round(performance.now() - started);
  try {
    switch (type) {
      case 'text2image': {
        const check = await imageAdapterFor(p.api_format).testConnection({ api_url: p.api_url, api_key: p.api_key, model_name: p.model_name, timeout_s: p.timeout_s });
        return said(check.ok, latency(), check.message, check.code);
      }
      case 'tts': {
        const r = await ttsAdapterFor(p.api_format as TtsApiFormat).testConnection({ api_format: p.api_format as TtsApiFormat, api_url: p.api_url, api_key: p.api_key, model_name: p.model_name, timeout_s: p.timeout_s });
        return said(r.ok, r.latency_ms, r.message, r.code);
      }
      case 'image2video': {
        const r = await videoAdapterFor(p.api_format as VideoApiFormat).testConnection({ api_url: p.api_url, api_key: p.api_key, api_secret: p.api_secret || undefined, model_name: p.model_name, timeout_s: p.timeout_s });
        return said(r.ok, r.latency_ms, r.message, r.code);
      }
    }
  } catch (e) {
    // An adapter that throws instead of answering (an unknown format, a bug) still gets words.
    return { ok: false, latency_ms: latency(), message: `The test failed unexpectedly: ${(e as Error).message}`, code: 'unexpected', params: {} };
  }
}

/**
 * An adapter's answer as a test result the web app words: the shared codes where they mean the same
 * (a rejected key, rate limiting), `media_ok` for a key that works; other codes fall back to the message.
 */
function said(ok: boolean, latencyMs: number, message: string, code?: string): ConnectionTestResult {
  const shared: Record<string, string> = { ok: 'media_ok', auth: 'key_rejected', rate_limited: 'rate_limited' };
  const resolved = code ?? (ok ? 'ok' : 'upstream');
  return { ok, latency_ms: latencyMs, message, code: shared[resolved] ?? resolved, params: {} };
}
