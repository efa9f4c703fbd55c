import { createHash, randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { MediaProviderError } from './errors.ts';
import type { TtsAdapter, TtsConnectionResult, TtsProviderConfig, TtsRequest, TtsResult, WordBoundary } from './tts-adapter.ts';

/**
 * Edge's online "read aloud" voices over their unofficial WebSocket. Off by default: it needs the
 * network and Microsoft may change it at any time. Framing and tokens follow the open-source
 * client rany2/edge-tts (src/edge_tts/communicate.py, drm.py, constants.py, v7.2 — Chromium
 * 143.0.3650.75); when Microsoft starts refusing the handshake (HTTP 403), bump EDGE_CHROMIUM_VERSION
 * to what that project uses.
 *
 * Client → server (text frames, CRLF headers, blank line, body):
 *   Path:speech.config  JSON asking for MP3 and word boundaries;
 *   Path:ssml           X-RequestId + Content-Type:application/ssml+xml, body the SSML.
 * Server → client:
 *   text   Path:turn.start | Path:audio.metadata (JSON, Metadata[].Type = WordBoundary,
 *          Data.Offset / Data.Duration in 100-ns ticks, Data.text.Text) | Path:turn.end;
 *   binary 2-byte big-endian header length, the header text (Path:audio), then MP3 bytes.
 */
export const EDGE_TTS_URL = 'wss://speech.platform.bing.com/consumer/speech/synthesize/readaloud/edge/v1';
export const EDGE_TRUSTED_CLIENT_TOKEN = '6A5AA1D4EAFF4E9FB37E23D68491D6F4';
export const EDGE_CHROMIUM_VERSION = '143.0.3650.75';
export const EDGE_DEFAULT_VOICE = 'zh-CN-XiaoxiaoNeural';
const EDGE_OUTPUT_FORMAT = 'audio-24khz-48kbitrate-mono-mp3';
/** Seconds between 1601-01-01 (Windows file time) and 1970-01-01. */
const WIN_EPOCH_S = 11_644_473_600;
const TICKS_PER_SECOND = 10_000_000;
const DEFAULT_TIMEOUT_S = 60;

/**
 * The Sec-MS-GEC token: SHA-256 (upper-case hex) of the current Windows file time, rounded down to
 * 5 minutes, in 100-ns ticks, followed by the trusted client token (drm.py generate_sec_ms_gec).
 */
export function secMsGec(nowMs = Date.now()): string {
  let seconds = Math.floor(nowMs / 1000) + WIN_EPOCH_S;
  seconds -= seconds % 300;
  const ticks = BigInt(seconds) * BigInt(TICKS_PER_SECOND);
  return createHash('sha256').update(`${ticks}${EDGE_TRUSTED_CLIENT_TOKEN}`, 'ascii').digest('hex').toUpperCase();
}

export function edgeConnectionUrl(apiUrl = EDGE_TTS_URL, nowMs = Date.now()): string {
  const url = new URL(apiUrl);
  url.searchParams.set('TrustedClientToken', EDGE_TRUSTED_CLIENT_TOKEN);
  url.searchParams.set('ConnectionId', randomUUID().replaceAll('-', ''));
  url.searchParams.set('Sec-MS-GEC', secMsGec(nowMs));
  url.searchParams.set('Sec-MS-GEC-Version', `1-${EDGE_CHROMIUM_VERSION}`);
  return url.toString();
}

const major = EDGE_CHROMIUM_VERSION.split('.')[0];
const HANDSHAKE_HEADERS = {
  Origin: 'chrome-extension://jdiccldimpdaibmpdkjnbmckianbfold',
  'User-Agent': `Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${major}.0.0.0 Safari/537.36 Edg/${major}.0.0.0`,
  Pragma: 'no-cache',
  'Cache-Control': 'no-cache',
  'Accept-Language': 'en-US,en;q=0.9',
};

const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
/** The JavaScript Date string the service expects, e.g. "Mon Dec 01 2025 14:00:00 GMT+0000 (Coordinated Universal Time)". */
const timestamp = () => new Date().toUTCString().replace(/^(\w+), (\d+) (\w+) (\d+) (.+) GMT$/, '$1 $3 $2 $4 $5 GMT+0000 (Coordinated Universal Time)');

/** Edge's rate is a signed percentage: speed 1.25 → "+25%". */
export function edgeRate(speed = 1): string {
  if (!Number.isFinite(speed) || speed < 0.5 || speed > 2) throw new RangeError(`speed must be between 0.5 and 2, got ${speed}`);
  const pct = Math.round((speed - 1) * 100);
  return `${pct >= 0 ? '+' : ''}${pct}%`;
}

export function edgeSsml(text: string, voice: string, speed = 1): string {
  const lang = /^[a-z]{2,3}-[A-Z]{2}/.exec(voice)?.[0] ?? 'en-US';
  return `<speak version='1.0' xmlns='http://www.w3.org/2001/10/synthesis' xml:lang='${lang}'><voice name='${xmlEscape(voice)}'><prosody pitch='+0Hz' rate='${edgeRate(speed)}' volume='+0%'>${xmlEscape(text)}</prosody></voice></speak>`;
}

/** Splits a text frame (or a binary frame's header block) into its headers and body. */
export function parseEdgeHeaders(block: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon)] = line.slice(colon + 1).trim();
  }
  return headers;
}

export async function synthesizeEdge(provider: Pick<TtsProviderConfig, 'api_url' | 'timeout_s'>, request: TtsRequest): Promise<TtsResult> {
  const text = request.text.trim();
  if (!text) throw new RangeError('nothing to say: the text is empty');
  const voice = request.voice ?? EDGE_DEFAULT_VOICE;
  const ssml = edgeSsml(text, voice, request.speed);
  const timeoutMs = (provider.timeout_s ?? DEFAULT_TIMEOUT_S) * 1000;
  const signal = request.signal;
  if (signal?.aborted) throw new MediaProviderError('cancelled', 'the speech request was cancelled');

  return new Promise<TtsResult>((resolve, reject) => {
    const ws = new WebSocket(edgeConnectionUrl(provider.api_url || EDGE_TTS_URL), { headers: HANDSHAKE_HEADERS, handshakeTimeout: Math.min(timeoutMs, 20_000) });
    const chunks: Buffer[] = [];
    const words: WordBoundary[] = [];
    let settled = false;
    const finish = (error: MediaProviderError | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (error) {
        ws.terminate();
        reject(error);
        return;
      }
      ws.close();
      const audio = Buffer.concat(chunks);
      if (audio.length === 0) reject(new MediaProviderError('bad_response', 'Edge ended the turn without any audio (is the voice name right?)', { retryable: false }));
      else resolve({ audio, mime: 'audio/mpeg', words, simulated: false });
    };
    const timer = setTimeout(() => finish(new MediaProviderError('timeout', `Edge TTS did not finish within ${timeoutMs / 1000} s`)), timeoutMs);
    const onAbort = () => finish(new MediaProviderError('cancelled', 'the speech request was cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });

    ws.on('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      finish(status === 401 || status === 403
        ? new MediaProviderError('auth', `Edge refused the connection (HTTP ${status}); its pinned client version ${EDGE_CHROMIUM_VERSION} may be outdated`, { status, retryable: false })
        : status === 429
          ? new MediaProviderError('rate_limited', 'Edge is rate-limiting connections (HTTP 429)', { status })
          : new MediaProviderError('upstream', `Edge refused the connection (HTTP ${status})`, { status }));
    });
    ws.on('error', (e) => finish(new MediaProviderError('upstream', `Edge TTS connection failed: ${e.message}`, { cause: e })));
    ws.on('close', () => finish(new MediaProviderError('upstream', 'Edge closed the connection before the end of the turn')));

    ws.on('open', () => {
      const config = { context: { synthesis: { audio: { metadataoptions: { sentenceBoundaryEnabled: 'false', wordBoundaryEnabled: 'true' }, outputFormat: EDGE_OUTPUT_FORMAT } } } };
      ws.send(`X-Timestamp:${timestamp()}\r\nContent-Type:application/json; charset=utf-8\r\nPath:speech.config\r\n\r\n${JSON.stringify(config)}\r\n`);
      ws.send(`X-RequestId:${randomUUID().replaceAll('-', '')}\r\nContent-Type:application/ssml+xml\r\nX-Timestamp:${timestamp()}Z\r\nPath:ssml\r\n\r\n${ssml}`);
    });

    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        if (data.length < 2) return finish(new MediaProviderError('bad_response', 'Edge sent a binary frame too short for its header length'));
        const headerLength = data.readUInt16BE(0);
        if (2 + headerLength > data.length) return finish(new MediaProviderError('bad_response', 'Edge sent a binary frame shorter than its header'));
        const headers = parseEdgeHeaders(data.subarray(2, 2 + headerLength).toString('utf8'));
        // The last audio frame of a turn carries headers and no bytes.
        if (headers.Path === 'audio' && data.length > 2 + headerLength) chunks.push(data.subarray(2 + headerLength));
        return;
      }
      const message = data.toString('utf8');
      const split = message.indexOf('\r\n\r\n');
      const headers = parseEdgeHeaders(split < 0 ? message : message.slice(0, split));
      const body = split < 0 ? '' : message.slice(split + 4);
      if (headers.Path === 'audio.metadata') {
        try {
          const meta = JSON.parse(body) as { Metadata?: { Type: string; Data: { Offset: number; Duration: number; text?: { Text?: string } } }[] };
          for (const m of meta.Metadata ?? []) {
            if (m.Type !== 'WordBoundary') continue;
            const start = m.Data.Offset / TICKS_PER_SECOND;
            words.push({ text: m.Data.text?.Text ?? '', start_s: round(start), end_s: round(start + m.Data.Duration / TICKS_PER_SECOND) });
          }
        } catch {
          finish(new MediaProviderError('bad_response', 'Edge sent unreadable word-boundary metadata'));
        }
      } else if (headers.Path === 'turn.end') finish(null);
    });
  });
}

const round = (s: number) => Math.round(s * 10_000) / 10_000;

/** Edge has no key; a tiny synthesis is the only check that the endpoint and pinned tokens still work. It is free. */
async function testEdgeConnection(provider: TtsProviderConfig, signal?: AbortSignal): Promise<TtsConnectionResult> {
  const started = performance.now();
  try {
    await synthesizeEdge({ ...provider, timeout_s: Math.min(provider.timeout_s ?? 20, 20) }, { text: '好', signal });
    return { ok: true, latency_ms: Math.round(performance.now() - started), message: 'Edge TTS answered.' };
  } catch (e) {
    if (!(e instanceof MediaProviderError)) throw e;
    return { ok: false, latency_ms: Math.round(performance.now() - started), message: e.message };
  }
}

export const edgeTtsAdapter: TtsAdapter = { synthesize: synthesizeEdge, testConnection: testEdgeConnection };
