import type { API_FORMATS } from '@ai-story/contracts';
import { synthesizeEspeak } from '../offline/espeak.ts';
import { edgeTtsAdapter } from './tts-edge.ts';
import { openAiSpeechAdapter } from './tts-openai.ts';

/**
 * Speech synthesis vendors behind one interface. The vendor shape is the provider's `api_format`
 * (DESIGN §9: never guessed from the URL).
 * - `openai_speech`: POST /audio/speech — OpenAI, SiliconFlow (CosyVoice) and compatible servers;
 * - `edge_tts`: Edge's read-aloud WebSocket (unofficial, version-pinned, off by default);
 * - `espeak`: the local espeak-ng voice — simulated, labelled so by `simulated: true`. It is the
 *   narration stage's local method, never a provider's format (the others follow API_FORMATS.tts).
 */
export type TtsApiFormat = (typeof API_FORMATS)['tts'][number] | 'espeak';

export interface TtsProviderConfig {
  api_format: TtsApiFormat;
  api_url: string;
  api_key?: string;
  model_name?: string;
  timeout_s?: number;
}

export interface TtsRequest {
  text: string;
  voice?: string;
  /** 1 = the vendor's normal rate. */
  speed?: number;
  /** Preferred container; a vendor that only speaks one (Edge: MP3) ignores it. */
  format?: 'wav' | 'mp3';
  signal?: AbortSignal;
}

export interface WordBoundary {
  text: string;
  start_s: number;
  end_s: number;
}

export interface TtsResult {
  audio: Buffer;
  mime: 'audio/wav' | 'audio/mpeg';
  /** Word timings, when the vendor reports them (Edge does). */
  words?: WordBoundary[];
  /** True for the offline espeak-ng voice, which callers must label as simulated. */
  simulated: boolean;
}

export interface TtsConnectionResult {
  ok: boolean;
  latency_ms: number;
  message: string;
}

export interface TtsAdapter {
  synthesize(provider: TtsProviderConfig, request: TtsRequest): Promise<TtsResult>;
  /** Checks that the provider answers and accepts the key, without a billable synthesis. */
  testConnection(provider: TtsProviderConfig, signal?: AbortSignal): Promise<TtsConnectionResult>;
}

const espeakAdapter: TtsAdapter = {
  async synthesize(_provider, request) {
    const audio = await synthesizeEspeak({ text: request.text, voice: request.voice, speed: request.speed, signal: request.signal });
    return { audio, mime: 'audio/wav', simulated: true };
  },
  async testConnection() {
    const started = performance.now();
    try {
      await synthesizeEspeak({ text: '好' });
      return { ok: true, latency_ms: Math.round(performance.now() - started), message: 'espeak-ng is installed (offline, simulated voice).' };
    } catch (e) {
      return { ok: false, latency_ms: Math.round(performance.now() - started), message: `espeak-ng is not usable: ${(e as Error).message}` };
    }
  },
};

export function ttsAdapterFor(apiFormat: TtsApiFormat): TtsAdapter {
  switch (apiFormat) {
    case 'openai_speech':
      return openAiSpeechAdapter;
    case 'edge_tts':
      return edgeTtsAdapter;
    case 'espeak':
      return espeakAdapter;
    default: {
      const unknown: never = apiFormat;
      throw new RangeError(`unknown speech api_format: ${String(unknown)}`);
    }
  }
}
