import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { run } from '../../narration/exec.ts';
import { synthesizeEspeak } from '../offline/espeak.ts';
import { edgeRate, parseEdgeHeaders, secMsGec } from './tts-edge.ts';
import { ttsAdapterFor } from './tts-adapter.ts';

// A local WebSocket server on 127.0.0.1 speaking Edge's read-aloud framing (see tts-edge.ts).
interface Seen { url: string; origin?: string; messages: { headers: Record<string, string>; body: string }[] }
let wss: WebSocketServer | undefined;
afterEach(async () => {
  if (wss) await new Promise((r) => wss!.close(r));
  wss = undefined;
});

function binaryFrame(headers: string, body: Buffer): Buffer {
  const head = Buffer.from(headers, 'utf8');
  const length = Buffer.alloc(2);
  length.writeUInt16BE(head.length);
  return Buffer.concat([length, head, body]);
}

async function startServer(onSsml: (ws: WebSocket, requestId: string) => void): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', (ws, req) => {
    const s: Seen = { url: req.url ?? '', origin: req.headers.origin, messages: [] };
    seen.push(s);
    ws.on('message', (data, isBinary) => {
      expect(isBinary).toBe(false);
      const text = data.toString();
      const split = text.indexOf('\r\n\r\n');
      const headers = parseEdgeHeaders(text.slice(0, split));
      s.messages.push({ headers, body: text.slice(split + 4) });
      if (headers.Path === 'ssml') onSsml(ws, headers['X-RequestId']);
    });
  });
  await new Promise((r) => wss!.once('listening', r));
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/consumer/speech/synthesize/readaloud/edge/v1`, seen };
}

describe('Edge TTS adapter against a local WebSocket', () => {
  test('assembles MP3 chunks and converts word boundaries from 100-ns ticks to seconds', async () => {
    const wav = await synthesizeEspeak({ text: '你好世界' });
    const mp3 = (await run('ffmpeg', ['-v', 'error', '-f', 'wav', '-i', 'pipe:0', '-c:a', 'libmp3lame', '-b:a', '48k', '-f', 'mp3', 'pipe:1'], { input: wav })).stdout;
    const half = Math.floor(mp3.length / 2);
    const { url, seen } = await startServer((ws, requestId) => {
      const text = (path: string, body: string) => ws.send(`X-RequestId:${requestId}\r\nContent-Type:application/json; charset=utf-8\r\nPath:${path}\r\n\r\n${body}`);
      text('turn.start', '{"context":{"serviceTag":"x"}}');
      text('audio.metadata', JSON.stringify({ Metadata: [{ Type: 'WordBoundary', Data: { Offset: 1_000_000, Duration: 4_500_000, text: { Text: '你好', Length: 2, BoundaryType: 'WordBoundary' } } }] }));
      ws.send(binaryFrame(`X-RequestId:${requestId}\r\nContent-Type:audio/mpeg\r\nPath:audio\r\n`, mp3.subarray(0, half)));
      text('audio.metadata', JSON.stringify({ Metadata: [{ Type: 'SessionEnd', Data: {} }, { Type: 'WordBoundary', Data: { Offset: 6_250_000, Duration: 5_000_000, text: { Text: '世界' } } }] }));
      ws.send(binaryFrame(`X-RequestId:${requestId}\r\nContent-Type:audio/mpeg\r\nPath:audio\r\n`, mp3.subarray(half)));
      ws.send(binaryFrame(`X-RequestId:${requestId}\r\nPath:audio\r\n`, Buffer.alloc(0)));
      text('turn.end', '{}');
    });

    const result = await ttsAdapterFor('edge_tts').synthesize({ api_format: 'edge_tts', api_url: url }, { text: '你好世界 <&>', voice: 'zh-CN-YunxiNeural', speed: 1.2 });

    expect(result.mime).toBe('audio/mpeg');
    expect(result.audio.equals(mp3)).toBe(true);
    expect(result.words).toEqual([
      { text: '你好', start_s: 0.1, end_s: 0.55 },
      { text: '世界', start_s: 0.625, end_s: 1.125 },
    ]);
    // The bytes are a playable MP3.
    const probe = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name', '-of', 'csv=p=0', '-f', 'mp3', 'pipe:0'], { input: result.audio });
    expect(probe.stdout.toString().trim()).toBe('mp3');

    // What the client sent: tokens on the URL, the config, then SSML with the voice, rate and escaped text.
    const query = new URL(seen[0].url, 'ws://x').searchParams;
    expect(query.get('TrustedClientToken')).toBe('6A5AA1D4EAFF4E9FB37E23D68491D6F4');
    expect(query.get('ConnectionId')).toMatch(/^[0-9a-f]{32}$/);
    // The token changes every 5 minutes; the connection may have been made in the previous window.
    expect([secMsGec(), secMsGec(Date.now() - 300_000)]).toContain(query.get('Sec-MS-GEC'));
    expect(query.get('Sec-MS-GEC-Version')).toMatch(/^1-\d+\.\d+\.\d+\.\d+$/);
    expect(seen[0].origin).toBe('chrome-extension://jdiccldimpdaibmpdkjnbmckianbfold');
    const [config, ssml] = seen[0].messages;
    expect(config.headers.Path).toBe('speech.config');
    expect(JSON.parse(config.body).context.synthesis.audio.metadataoptions.wordBoundaryEnabled).toBe('true');
    expect(ssml.headers).toMatchObject({ Path: 'ssml', 'Content-Type': 'application/ssml+xml' });
    expect(ssml.headers['X-RequestId']).toMatch(/^[0-9a-f]{32}$/);
    expect(ssml.body).toContain("<voice name='zh-CN-YunxiNeural'>");
    expect(ssml.body).toContain("rate='+20%'");
    expect(ssml.body).toContain('你好世界 &lt;&amp;&gt;');
    expect(ssml.body).toContain("xml:lang='zh-CN'");
  });

  test('a connection closed before turn.end is an upstream error, not a short success', async () => {
    const { url } = await startServer((ws) => {
      ws.send(binaryFrame('Path:audio\r\n', Buffer.from([0xff, 0xfb, 0x90, 0x00])));
      ws.close();
    });
    await expect(ttsAdapterFor('edge_tts').synthesize({ api_format: 'edge_tts', api_url: url }, { text: '你好' })).rejects.toMatchObject({ code: 'upstream' });
  });

  test('a turn with no audio is a bad response', async () => {
    const { url } = await startServer((ws) => ws.send('Path:turn.end\r\n\r\n{}'));
    await expect(ttsAdapterFor('edge_tts').synthesize({ api_format: 'edge_tts', api_url: url }, { text: '你好' })).rejects.toMatchObject({ code: 'bad_response' });
  });

  test('a refused handshake (stale pinned version) is an auth error', async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0, verifyClient: (_info, cb) => cb(false, 403, 'Forbidden') });
    await new Promise((r) => wss!.once('listening', r));
    const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`;
    await expect(ttsAdapterFor('edge_tts').synthesize({ api_format: 'edge_tts', api_url: url }, { text: '你好' })).rejects.toMatchObject({ code: 'auth', retryable: false });
  });

  test('a cancel closes the socket and rejects as cancelled', async () => {
    const { url } = await startServer(() => {});
    const controller = new AbortController();
    const pending = ttsAdapterFor('edge_tts').synthesize({ api_format: 'edge_tts', api_url: url }, { text: '你好', signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    await expect(pending).rejects.toMatchObject({ code: 'cancelled' });
  });

  test('Sec-MS-GEC is stable within a 5-minute window and changes across it', () => {
    const t = Date.UTC(2025, 0, 1, 12, 0, 0);
    expect(secMsGec(t)).toMatch(/^[0-9A-F]{64}$/);
    expect(secMsGec(t + 299_000)).toBe(secMsGec(t));
    expect(secMsGec(t + 300_000)).not.toBe(secMsGec(t));
    expect(edgeRate(0.8)).toBe('-20%');
    expect(edgeRate(1)).toBe('+0%');
  });
});
