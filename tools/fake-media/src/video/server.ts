/**
 * Simulated image-to-video upstream: Kling's and Seedance's create-then-poll APIs on one port
 * (their paths do not overlap), handing out real MP4s at URLs that expire.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { listen, sleep } from '../http-kit.ts';
import { ClipMaker } from './clip-maker.ts';
import { handleKling, type KlingCredentials } from './kling.ts';
import { handleSeedance } from './seedance.ts';
import { DEFAULT_VIDEO_KNOBS, TaskBook, type FakeVideoTask, type VideoKnobs, type VideoStats } from './tasks.ts';

export interface FakeVideoOptions extends Partial<VideoKnobs> {
  kling?: KlingCredentials;
  seedanceApiKey?: string;
  port?: number;
  ffmpegPath?: string;
  /** Clip durations rendered before the server answers (default 5 and 10 s at the default size). */
  prewarm?: number[];
}

export interface FakeVideoServer {
  /** Origin (`http://127.0.0.1:port`): Kling's paths start with `/v1`, Ark's with `/api/v3`. */
  url: string;
  port: number;
  kling: KlingCredentials;
  seedanceApiKey: string;
  /** Mutable: tests change failures and timings between requests. */
  knobs: VideoKnobs;
  stats: VideoStats;
  /** Every task created, with what it was asked (camera_control, parsed Seedance params). */
  tasks: Map<string, FakeVideoTask>;
  close(): Promise<void>;
}

const HTML_PAGE = '<!doctype html><html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>';

export async function startFakeVideo(options: FakeVideoOptions = {}): Promise<FakeVideoServer> {
  const {
    kling = { accessKey: 'ak-fake-kling', secretKey: 'sk-fake-kling' },
    seedanceApiKey = 'ark-fake-key',
    port = 0,
    ffmpegPath,
    prewarm = [5, 10],
    ...knobOverrides
  } = options;
  const knobs: VideoKnobs = { ...DEFAULT_VIDEO_KNOBS, ...knobOverrides };
  const clips = new ClipMaker(ffmpegPath);
  const book = new TaskBook(knobs, clips);
  const cancelled = new Set<string>();
  await Promise.all(prewarm.map((duration_s) => clips.clip({ duration_s, width: knobs.clipWidth, height: knobs.clipHeight, fps: knobs.fps })));

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    book.stats.requests++;
    res.on('finish', () => (book.stats.byStatus[res.statusCode] = (book.stats.byStatus[res.statusCode] ?? 0) + 1));
    const path = new URL(req.url ?? '/', 'http://x').pathname.replace(/\/+$/, '');

    const fileMatch = /^\/files\/([0-9a-f]+)\.mp4$/.exec(path);
    if (fileMatch && (req.method === 'GET' || req.method === 'HEAD')) {
      book.stats.downloads++;
      const file = await book.file(fileMatch[1]);
      if (file === undefined || file === 'expired') {
        // Object stores answer an expired signature 403 with an XML body.
        const status = file === 'expired' ? 403 : 404;
        const xml = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${status === 403 ? 'AccessDenied' : 'NoSuchKey'}</Code><Message>${status === 403 ? 'Request has expired' : 'The specified key does not exist.'}</Message></Error>`;
        res.writeHead(status, { 'content-type': 'application/xml' });
        return res.end(xml);
      }
      res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': file.length, 'accept-ranges': 'none' });
      return res.end(req.method === 'HEAD' ? undefined : file);
    }

    if (knobs.latencyMs > 0) await sleep(knobs.latencyMs);
    // Only creates take it, like the other create knobs, so a stray poll cannot use it up.
    if (req.method === 'POST' && book.takeHtmlAnswer()) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(HTML_PAGE);
    }
    if (await handleKling(req, res, path, book, kling)) return;
    if (await handleSeedance(req, res, path, book, seedanceApiKey, cancelled)) return;
    // Outside both APIs a gateway answers, not the vendor: an HTML 404, as nginx would.
    res.writeHead(404, { 'content-type': 'text/html' });
    res.end('<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center><hr><center>nginx</center></body></html>');
  };

  const server = await listen(handle, port);
  book.baseUrl = server.url;
  return { url: server.url, port: server.port, kling, seedanceApiKey, knobs, stats: book.stats, tasks: book.tasks, close: server.close };
}
