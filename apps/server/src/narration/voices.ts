import { createHash } from 'node:crypto';
import type { Voice } from '@ai-story/contracts';
import { setTimeout as sleep } from 'node:timers/promises';
import { MediaProviderError, outcomeOf, ProviderLimitError } from '../providers/media/errors.ts';
import { limitedCall, type MediaServices } from '../stages/definition.ts';
import { EDGE_DEFAULT_VOICE } from '../providers/media/tts-edge.ts';
import { ttsAdapterFor, type TtsApiFormat, type TtsResult } from '../providers/media/tts-adapter.ts';
import type { ClientProvider } from '../providers/service.ts';

/**
 * Who speaks: the offline voice (espeak-ng, simulated) or a TTS provider's api_format, the voices
 * each offers, and one sentence's synthesis with retry and fail-over across providers.
 */
export type SpeechMethod = TtsApiFormat;

/** espeak-ng 1.51 voices and variants (espeak-ng --voices, /usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v). */
const ESPEAK_VOICES: Voice[] = [
  { id: 'cmn', name: '普通话 · 男声 (espeak-ng)', language: 'zh-CN' },
  { id: 'cmn+f3', name: '普通话 · 女声 (espeak-ng)', language: 'zh-CN' },
  { id: 'cmn+m3', name: '普通话 · 低沉男声 (espeak-ng)', language: 'zh-CN' },
  { id: 'yue', name: '粤语 (espeak-ng)', language: 'zh-HK' },
  { id: 'en-us', name: 'English (espeak-ng)', language: 'en-US' },
];
/** https://platform.openai.com/docs/guides/text-to-speech#voice-options (2025). */
const OPENAI_VOICES: Voice[] = ['alloy', 'ash', 'ballad', 'coral', 'echo', 'fable', 'nova', 'onyx', 'sage', 'shimmer', 'verse'].map((id) => ({
  id,
  name: id[0].toUpperCase() + id.slice(1),
  language: 'multi',
}));
/** A few of Edge's Chinese neural voices (its voice list endpoint, 2024). */
const EDGE_VOICES: Voice[] = [
  { id: EDGE_DEFAULT_VOICE, name: '晓晓 (女)', language: 'zh-CN' },
  { id: 'zh-CN-YunxiNeural', name: '云希 (男)', language: 'zh-CN' },
  { id: 'zh-CN-YunjianNeural', name: '云健 (男)', language: 'zh-CN' },
  { id: 'zh-CN-XiaoyiNeural', name: '晓伊 (女)', language: 'zh-CN' },
];

export const VOICES: Record<SpeechMethod, { voices: Voice[]; defaultVoice: string }> = {
  espeak: { voices: ESPEAK_VOICES, defaultVoice: 'cmn' },
  openai_speech: { voices: OPENAI_VOICES, defaultVoice: 'alloy' },
  edge_tts: { voices: EDGE_VOICES, defaultVoice: EDGE_DEFAULT_VOICE },
};

const ESPEAK_IDS = new Set(ESPEAK_VOICES.map((v) => v.id));

/**
 * The voice to ask the method for. A provider may take voices outside our list (SiliconFlow's
 * "FunAudioLLM/CosyVoice2-0.5B:alex"), so a provider keeps any name except an espeak one, which a
 * project carries over from trying the offline voice; espeak keeps only its own.
 */
export function resolveVoice(method: SpeechMethod, wanted: string | undefined): string {
  const v = wanted?.trim();
  if (!v) return VOICES[method].defaultVoice;
  if (method === 'espeak') return ESPEAK_IDS.has(v) ? v : VOICES.espeak.defaultVoice;
  return ESPEAK_IDS.has(v) ? VOICES[method].defaultVoice : v;
}

/** The method a provider list means: the first provider's format, or the offline voice when there is none. */
export function methodOf(providers: Pick<ClientProvider, 'api_format'>[]): SpeechMethod {
  const format = providers[0]?.api_format;
  return format === 'openai_speech' || format === 'edge_tts' ? format : 'espeak';
}

/** What makes two sentences' speech the same: who speaks it, how fast, and the words. */
export function sentenceCacheKey(method: SpeechMethod, model: string, voice: string, speed: number, text: string): string {
  return createHash('sha256').update(JSON.stringify([method, model, voice, speed, text])).digest('hex').slice(0, 32);
}

const RETRIES_PER_PROVIDER = 2;
const MAX_BACKOFF_MS = 5_000;

/**
 * One sentence's speech: each provider in order, a retryable fault retried with backoff (honouring
 * Retry-After up to a bound), then the next provider; with no provider, the offline voice.
 */
export async function synthesizeSentence(
  providers: ClientProvider[],
  request: { text: string; voice: string; speed: number; signal: AbortSignal },
  /** Told of every vendor call (retries included), for usage accounting; not called for the offline voice. */
  onCall?: (provider: ClientProvider, call: { outcome: string; durationMs: number }) => Promise<unknown>,
  /** Counts each call against the provider's limits (MediaServices.beginCall); over a limit, the next provider. */
  beginCall?: MediaServices['beginCall'],
): Promise<TtsResult> {
  if (providers.length === 0) {
    return ttsAdapterFor('espeak').synthesize({ api_format: 'espeak', api_url: '' }, { ...request, format: 'wav' });
  }
  let last: unknown;
  for (const p of providers) {
    const format = p.api_format === 'edge_tts' ? 'edge_tts' : 'openai_speech';
    const adapter = ttsAdapterFor(format);
    for (let attempt = 0; attempt <= RETRIES_PER_PROVIDER; attempt++) {
      const started = performance.now();
      try {
        const synthesize = () =>
          adapter.synthesize({ api_format: format, api_url: p.api_url, api_key: p.api_key, model_name: p.model_name, timeout_s: p.timeout_s }, { ...request, format: 'wav' });
        const result = beginCall ? await limitedCall({ beginCall }, p, request.signal, synthesize) : await synthesize();
        await onCall?.(p, { outcome: 'ok', durationMs: performance.now() - started });
        return result;
      } catch (err) {
        last = err;
        if (err instanceof ProviderLimitError) break; // not called: nothing to record, the next provider at once
        await onCall?.(p, { outcome: outcomeOf(err, request.signal), durationMs: performance.now() - started });
        if (request.signal.aborted) throw err;
        if (!(err instanceof MediaProviderError) || !err.retryable || attempt === RETRIES_PER_PROVIDER) break;
        await sleep(Math.min(MAX_BACKOFF_MS, err.retryAfterMs ?? 300 * 2 ** attempt), undefined, { signal: request.signal });
      }
    }
  }
  throw last;
}
