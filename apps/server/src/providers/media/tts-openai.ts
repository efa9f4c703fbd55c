import { fileTypeFromBuffer } from 'file-type';
import { MediaProviderError, retryAfterMs } from './errors.ts';
import type { TtsAdapter, TtsConnectionResult, TtsProviderConfig, TtsRequest, TtsResult } from './tts-adapter.ts';

/**
 * The OpenAI speech shape: POST {api_url}/audio/speech { model, input, voice, speed, response_format }
 * → the audio bytes. Follows https://platform.openai.com/docs/api-reference/audio/createSpeech
 * (2025: speed 0.25..4, response_format mp3|opus|aac|flac|wav|pcm, input ≤ 4096 characters) and
 * SiliconFlow's compatible endpoint https://docs.siliconflow.cn/cn/api-reference/audio/create-speech
 * (CosyVoice: model "FunAudioLLM/CosyVoice2-0.5B", voice "FunAudioLLM/CosyVoice2-0.5B:alex").
 */
const DEFAULT_TIMEOUT_S = 60;
const MAX_INPUT_CHARS = 4096;
/** Error bodies are short JSON; never buffer a runaway one. */
const MAX_ERROR_BODY = 16 * 1024;

const base = (url: string) => url.replace(/\/+$/, '');

export async function synthesizeOpenAiSpeech(provider: TtsProviderConfig, request: TtsRequest): Promise<TtsResult> {
  const format = request.format ?? 'wav';
  if (Array.from(request.text).length > MAX_INPUT_CHARS) throw new RangeError(`the text is longer than ${MAX_INPUT_CHARS} characters; split it into sentences first`);
  const response = await send(provider, `${base(provider.api_url)}/audio/speech`, request.signal, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...authHeader(provider) },
    body: JSON.stringify({
      model: provider.model_name,
      input: request.text,
      voice: request.voice,
      speed: request.speed ?? 1,
      response_format: format,
    }),
  });
  const audio = Buffer.from(await readBody(response, request.signal, provider));
  // Some compatible servers answer 200 with a JSON error or an HTML page; trust the bytes, not the header.
  const kind = await fileTypeFromBuffer(audio);
  const expected = format === 'wav' ? 'audio/wav' : 'audio/mpeg';
  if (kind?.mime !== expected) {
    throw new MediaProviderError('bad_response', `expected ${format.toUpperCase()} audio, got ${kind?.mime ?? `${audio.length} bytes of ${response.headers.get('content-type') ?? 'unknown type'}`}`, {
      vendorMessage: kind ? undefined : audio.subarray(0, 300).toString('utf8'),
    });
  }
  return { audio, mime: expected, simulated: false };
}

/** GET {api_url}/models authenticates without billing anything. */
export async function testOpenAiSpeechConnection(provider: TtsProviderConfig, signal?: AbortSignal): Promise<TtsConnectionResult> {
  const started = performance.now();
  const latency = () => Math.round(performance.now() - started);
  try {
    const response = await send({ ...provider, timeout_s: Math.min(provider.timeout_s ?? 20, 20) }, `${base(provider.api_url)}/models`, signal, { method: 'GET', headers: authHeader(provider) });
    await response.body?.cancel();
    return { ok: true, latency_ms: latency(), message: `Connected: the key was accepted (${latency()} ms).` };
  } catch (e) {
    if (!(e instanceof MediaProviderError)) throw e;
    const words: Record<string, string> = {
      auth: 'The API key was rejected. Check that it is correct and active for this provider.',
      rate_limited: 'The key works but the provider is rate-limiting it right now.',
      timeout: 'The provider did not answer in time. Check the API URL and the network.',
      cancelled: 'The test was cancelled.',
    };
    return { ok: false, latency_ms: latency(), code: e.code, message: words[e.code] ?? `${e.message}${e.vendorMessage ? ` — ${e.vendorMessage}` : ''}` };
  }
}

export const openAiSpeechAdapter: TtsAdapter = { synthesize: synthesizeOpenAiSpeech, testConnection: testOpenAiSpeechConnection };

function authHeader(provider: TtsProviderConfig): Record<string, string> {
  return provider.api_key ? { authorization: `Bearer ${provider.api_key}` } : {};
}

async function send(provider: TtsProviderConfig, url: string, signal: AbortSignal | undefined, init: RequestInit): Promise<Response> {
  const timeoutMs = (provider.timeout_s ?? DEFAULT_TIMEOUT_S) * 1000;
  const timeout = AbortSignal.timeout(timeoutMs);
  let response: Response;
  try {
    response = await fetch(url, { ...init, signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
  } catch (e) {
    throw networkError(e, signal, timeoutMs);
  }
  if (response.ok) return response;
  const text = await response.text().catch(() => '');
  throw httpError(response, text.slice(0, MAX_ERROR_BODY));
}

async function readBody(response: Response, signal: AbortSignal | undefined, provider: TtsProviderConfig): Promise<ArrayBuffer> {
  try {
    return await response.arrayBuffer();
  } catch (e) {
    // The body is read under the same signals as the request.
    throw networkError(e, signal, (provider.timeout_s ?? DEFAULT_TIMEOUT_S) * 1000);
  }
}

function networkError(e: unknown, signal: AbortSignal | undefined, timeoutMs: number): MediaProviderError {
  if (signal?.aborted) return new MediaProviderError('cancelled', 'the speech request was cancelled', { cause: e });
  const name = (e as Error)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') return new MediaProviderError('timeout', `the speech provider did not answer within ${timeoutMs / 1000} s`, { cause: e });
  const code = ((e as { cause?: { code?: string } })?.cause?.code) ?? '';
  return new MediaProviderError('upstream', `the speech provider could not be reached${code ? ` (${code})` : ''}`, { cause: e });
}

function httpError(response: Response, body: string): MediaProviderError {
  const status = response.status;
  let vendorMessage = body;
  let vendorCode = '';
  try {
    const json = JSON.parse(body) as { error?: { message?: string; code?: string | number; type?: string } | string; message?: string; code?: string | number };
    const err = typeof json.error === 'object' ? json.error : undefined;
    vendorMessage = err?.message ?? (typeof json.error === 'string' ? json.error : json.message) ?? body;
    vendorCode = String(err?.code ?? err?.type ?? json.code ?? '');
  } catch {
    // Not JSON: keep the text.
  }
  const options = { status, vendorMessage: vendorMessage || undefined };
  if (status === 401 || status === 403) return new MediaProviderError('auth', `the speech provider refused the key (HTTP ${status})`, options);
  if (status === 429) return new MediaProviderError('rate_limited', 'the speech provider is rate-limiting requests (HTTP 429)', { ...options, retryAfterMs: retryAfterMs(response.headers.get('retry-after')) });
  // OpenAI: 400 with code "content_policy_violation"; compatible vendors word it in their message.
  if (status === 400 && /content_policy|moderation|safety|sensitive|inappropriate/i.test(`${vendorCode} ${vendorMessage}`)) {
    return new MediaProviderError('moderation', 'the speech provider refused the text (content policy)', options);
  }
  if (status === 408 || status === 504) return new MediaProviderError('timeout', `the speech provider timed out (HTTP ${status})`, options);
  if (status >= 500) return new MediaProviderError('upstream', `the speech provider failed (HTTP ${status})`, { ...options, retryAfterMs: retryAfterMs(response.headers.get('retry-after')) });
  return new MediaProviderError('upstream', `the speech provider rejected the request (HTTP ${status})`, { ...options, retryable: false });
}
