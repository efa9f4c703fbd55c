/**
 * Simulated OpenAI-shape speech upstream. Follows the OpenAI API reference, "Audio → Create speech"
 * (https://platform.openai.com/docs/api-reference/audio/createSpeech, as published in 2025):
 * `POST /v1/audio/speech` → the audio bytes; errors are `{ error: { message, type, param, code } }`.
 * The audio is real (espeak-ng `cmn` through ffmpeg), so clients can probe and mix it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerOf, listen, readJson, sendJson, sleep } from '../http-kit.ts';
import { SPEECH_FORMATS, SPEECH_MIME, SPEECH_VOICES, synthesizeSpeech, type SpeechFormat } from './synthesize.ts';

export const SPEECH_MODELS = ['tts-1', 'tts-1-hd', 'gpt-4o-mini-tts'];

export interface SpeechKnobs {
  /** Delay before any answer. */
  latencyMs: number;
  /** The next N speech requests answer 429 with `Retry-After`. */
  rateLimitTimes: number;
  retryAfterS: number;
  /** The next N speech requests answer 500. */
  serverErrorTimes: number;
  /** Inputs containing any of these are refused as a policy violation (400). */
  refuseWords: string[];
  /** OpenAI's documented limit is 4096 characters. */
  maxInputChars: number;
}

export interface FakeSpeechOptions extends Partial<SpeechKnobs> {
  apiKey?: string;
  port?: number;
  ffmpegPath?: string;
  espeakPath?: string;
}

export interface SpeechStats {
  /** Every HTTP request, whatever its answer. */
  requests: number;
  /** Speech requests that returned audio. */
  synthesized: number;
  /** Characters of input in the requests that returned audio (what a vendor bills). */
  characters: number;
  byStatus: Record<number, number>;
  /** Every request that returned audio: its text and voice, in order (tests check who spoke what). */
  spoken: { input: string; voice: string }[];
  /** The last accepted request body, for tests that check what a client sent. */
  lastRequest?: { model: string; input: string; voice: string; speed: number; response_format: SpeechFormat };
}

export interface FakeSpeechServer {
  /** Base URL ending in `/v1`, as an OpenAI client expects. */
  url: string;
  port: number;
  apiKey: string;
  /** Mutable: tests turn failures on and off between requests. */
  knobs: SpeechKnobs;
  stats: SpeechStats;
  close(): Promise<void>;
}

function openAiError(res: ServerResponse, status: number, message: string, type: string, code: string | null, param: string | null = null, headers: Record<string, string> = {}) {
  sendJson(res, status, { error: { message, type, param, code } }, headers);
}

export async function startFakeSpeech(options: FakeSpeechOptions = {}): Promise<FakeSpeechServer> {
  const { apiKey = 'sk-fake-speech', port = 0, ffmpegPath, espeakPath, ...knobOverrides } = options;
  const knobs: SpeechKnobs = {
    latencyMs: 0,
    rateLimitTimes: 0,
    retryAfterS: 1,
    serverErrorTimes: 0,
    refuseWords: [],
    maxInputChars: 4096,
    ...knobOverrides,
  };
  const stats: SpeechStats = { requests: 0, synthesized: 0, characters: 0, byStatus: {}, spoken: [] };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    stats.requests++;
    res.on('finish', () => (stats.byStatus[res.statusCode] = (stats.byStatus[res.statusCode] ?? 0) + 1));
    if (knobs.latencyMs > 0) await sleep(knobs.latencyMs);
    const path = new URL(req.url ?? '/', 'http://x').pathname.replace(/\/+$/, '');

    if (bearerOf(req) !== apiKey) {
      const shown = bearerOf(req) ? `${bearerOf(req)!.slice(0, 3)}***` : '';
      return openAiError(
        res,
        401,
        shown ? `Incorrect API key provided: ${shown}. You can find your API key at https://platform.openai.com/account/api-keys.` : "You didn't provide an API key.",
        'invalid_request_error',
        shown ? 'invalid_api_key' : null,
      );
    }

    if (req.method === 'GET' && path === '/v1/models') {
      return sendJson(res, 200, { object: 'list', data: SPEECH_MODELS.map((id) => ({ id, object: 'model', created: 1_699_046_015, owned_by: 'system' })) });
    }
    if (req.method !== 'POST' || path !== '/v1/audio/speech') {
      return openAiError(res, 404, `Invalid URL (${req.method} ${path})`, 'invalid_request_error', null);
    }

    const body = (await readJson(req)) as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object') {
      return openAiError(res, 400, 'We could not parse the JSON body of your request.', 'invalid_request_error', null);
    }
    const { model, input, voice } = body;
    const speed = body.speed === undefined ? 1 : body.speed;
    const format = body.response_format === undefined ? 'mp3' : body.response_format;
    if (typeof model !== 'string' || !SPEECH_MODELS.includes(model)) {
      return openAiError(res, 404, `The model \`${String(model)}\` does not exist or you do not have access to it.`, 'invalid_request_error', 'model_not_found');
    }
    if (typeof input !== 'string' || input.trim() === '') {
      return openAiError(res, 400, "Missing required parameter: 'input'.", 'invalid_request_error', 'missing_required_parameter', 'input');
    }
    if (input.length > knobs.maxInputChars) {
      return openAiError(
        res,
        400,
        `Invalid 'input': string too long. Expected a string with maximum length ${knobs.maxInputChars}, but got a string with length ${input.length} instead.`,
        'invalid_request_error',
        'string_above_max_length',
        'input',
      );
    }
    if (typeof voice !== 'string' || !SPEECH_VOICES.includes(voice)) {
      return openAiError(res, 400, `Invalid value for 'voice': expected one of ${SPEECH_VOICES.join(', ')}.`, 'invalid_request_error', 'invalid_value', 'voice');
    }
    if (typeof speed !== 'number' || !(speed >= 0.25 && speed <= 4)) {
      return openAiError(res, 400, "Invalid 'speed': expected a number between 0.25 and 4.0.", 'invalid_request_error', 'invalid_value', 'speed');
    }
    if (typeof format !== 'string' || !(SPEECH_FORMATS as readonly string[]).includes(format)) {
      return openAiError(res, 400, `Invalid value for 'response_format': expected one of ${SPEECH_FORMATS.join(', ')}.`, 'invalid_request_error', 'invalid_value', 'response_format');
    }

    // Failures strike after validation, as a real overloaded upstream would.
    if (knobs.rateLimitTimes > 0) {
      knobs.rateLimitTimes--;
      return openAiError(res, 429, 'Rate limit reached for requests per min. Please try again later.', 'requests', 'rate_limit_exceeded', null, {
        'retry-after': String(knobs.retryAfterS),
      });
    }
    if (knobs.serverErrorTimes > 0) {
      knobs.serverErrorTimes--;
      return openAiError(res, 500, 'The server had an error while processing your request. Sorry about that!', 'server_error', null);
    }
    const refused = knobs.refuseWords.find((word) => input.includes(word));
    if (refused) {
      return openAiError(res, 400, 'Your request was rejected as a result of our safety system.', 'invalid_request_error', 'content_policy_violation', 'input');
    }

    const audio = await synthesizeSpeech(input, voice, speed, format as SpeechFormat, { ffmpegPath, espeakPath });
    stats.synthesized++;
    stats.characters += input.length;
    stats.spoken.push({ input, voice });
    if (stats.spoken.length > 10_000) stats.spoken.shift(); // a long-lived simulator keeps the recent ones

    stats.lastRequest = { model, input, voice, speed, response_format: format as SpeechFormat };
    res.writeHead(200, { 'content-type': SPEECH_MIME[format as SpeechFormat], 'content-length': audio.length });
    res.end(audio);
  };

  const server = await listen(handle, port);
  return { url: `${server.url}/v1`, port: server.port, apiKey, knobs, stats, close: server.close };
}
