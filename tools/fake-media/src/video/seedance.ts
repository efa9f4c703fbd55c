/**
 * Simulated Volcengine Ark video generation (Seedance). Follows the Ark docs "创建视频生成任务 API"
 * (https://www.volcengine.com/docs/82379/1520757) and "查询视频生成任务 API"
 * (https://www.volcengine.com/docs/82379/1521309), as published mid-2025:
 * - `POST /api/v3/contents/generations/tasks` `{ model, content: [{ type: 'text', text }, { type: 'image_url',
 *   image_url: { url }, role? }] }` → `{ id }`; parameters ride in the text as `--ratio 9:16 --dur 5 …`
 *   (long and short names: ratio/rt, duration/dur, resolution/rs, camerafixed/cf, seed, watermark/wm,
 *   framepersecond/fps);
 * - `GET …/tasks/{id}` → `{ id, model, status: queued | running | succeeded | failed | cancelled,
 *   content: { video_url }, usage: { completion_tokens, total_tokens }, error? }`;
 * - `DELETE …/tasks/{id}` cancels a queued task;
 * - errors: `{ error: { code, message, param, type } }` with the HTTP status.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerOf, readJson, sendJson } from '../http-kit.ts';
import type { FakeVideoTask, TaskBook } from './tasks.ts';

const BASE = '/api/v3/contents/generations/tasks';

const ALIASES: Record<string, string> = {
  rt: 'ratio',
  dur: 'duration',
  rs: 'resolution',
  cf: 'camerafixed',
  wm: 'watermark',
  fps: 'framepersecond',
};
const RATIOS = ['21:9', '16:9', '4:3', '1:1', '3:4', '9:16', '9:21', 'adaptive'];
const RESOLUTIONS = ['480p', '720p', '1080p'];

/** Splits `<prompt> --ratio 9:16 --dur 5` into the prompt and its parameters (long names). */
export function parseSeedanceText(text: string): { prompt: string; params: Record<string, string> } {
  const params: Record<string, string> = {};
  const prompt = text
    .replace(/\s*--([a-z]+)\s+(\S+)/gi, (_, name: string, value: string) => {
      const key = name.toLowerCase();
      params[ALIASES[key] ?? key] = value;
      return '';
    })
    .trim();
  return { prompt, params };
}

/** The clip size the simulator renders for a ratio: the short side is 360 px to keep tests light. */
function sizeFor(ratio: string, fallback: { width: number; height: number }) {
  const match = /^(\d+):(\d+)$/.exec(ratio);
  if (!match) return fallback;
  const [w, h] = [Number(match[1]), Number(match[2])];
  const even = (n: number) => Math.round(n / 2) * 2;
  return w >= h ? { width: even((360 * w) / h), height: 360 } : { width: 360, height: even((360 * h) / w) };
}

const RESOLUTION_PIXELS: Record<string, number> = { '480p': 854 * 480, '720p': 1280 * 720, '1080p': 1920 * 1080 };

function arkError(res: ServerResponse, status: number, code: string, message: string, type: string, headers: Record<string, string> = {}) {
  sendJson(res, status, { error: { code, message: `${message} Request id: ${randomBytes(10).toString('hex')}`, param: '', type } }, headers);
}

async function taskView(task: FakeVideoTask, book: TaskBook, cancelled: Set<string>) {
  const phase = cancelled.has(task.id) ? 'cancelled' : book.phase(task);
  const params = task.params ?? {};
  const fps = Number(params.framepersecond ?? 24);
  const view: Record<string, unknown> = {
    id: task.id,
    model: task.model,
    status: phase,
    created_at: Math.floor(task.createdAt / 1000),
    updated_at: Math.floor(Date.now() / 1000),
    seed: Number(params.seed ?? 42),
    resolution: params.resolution ?? '720p',
    ratio: params.ratio ?? 'adaptive',
    duration: task.duration_s,
    framespersecond: fps,
  };
  if (phase === 'succeeded') {
    view.content = { video_url: await book.videoUrl(task) };
    // Ark bills video in tokens: width × height × fps × seconds / 1024 of the requested resolution.
    const tokens = Math.round(((RESOLUTION_PIXELS[params.resolution ?? '720p'] ?? RESOLUTION_PIXELS['720p']) * fps * task.duration_s) / 1024);
    view.usage = { completion_tokens: tokens, total_tokens: tokens };
  }
  if (phase === 'failed') view.error = { code: 'OutputVideoSensitiveContentDetected', message: task.failMessage };
  return view;
}

/** Answers Ark's routes; returns false for paths that are not Ark's. */
export async function handleSeedance(req: IncomingMessage, res: ServerResponse, path: string, book: TaskBook, apiKey: string, cancelled: Set<string>): Promise<boolean> {
  if (!path.startsWith(BASE)) return false;
  if (bearerOf(req) !== apiKey) {
    arkError(res, 401, 'AuthenticationError', 'The API key or AK/SK in the request is missing or invalid.', 'Unauthorized');
    return true;
  }
  const taskMatch = new RegExp(`^${BASE}/([^/]+)$`).exec(path);
  if (taskMatch && (req.method === 'GET' || req.method === 'DELETE')) {
    if (req.method === 'GET') book.stats.polls++;
    const task = book.tasks.get(decodeURIComponent(taskMatch[1]));
    if (!task || task.vendor !== 'seedance') {
      arkError(res, 404, 'ResourceNotFound', 'The specified task is not found.', 'NotFound');
      return true;
    }
    if (req.method === 'DELETE') {
      // Only a queued task can be cancelled; a running one is answered 409, as the doc says.
      if (book.phase(task) !== 'queued' || cancelled.has(task.id)) {
        arkError(res, 409, 'InvalidAction.TaskStatus', `The task in status ${book.phase(task)} cannot be cancelled.`, 'Conflict');
      } else {
        cancelled.add(task.id);
        sendJson(res, 200, {});
      }
      return true;
    }
    sendJson(res, 200, await taskView(task, book, cancelled));
    return true;
  }
  if (req.method !== 'POST' || path !== BASE) {
    arkError(res, 404, 'NotFound', `${req.method} ${path} is not found.`, 'NotFound');
    return true;
  }

  const body = (await readJson(req)) as Record<string, unknown> | undefined;
  const bad = (message: string, param = '') => (arkError(res, 400, 'InvalidParameter', `${message}${param && ` (${param})`}`, 'BadRequest'), true);
  if (!body || typeof body !== 'object') return bad('The request body is not valid JSON.');
  const failure = book.takeCreateFailure();
  if (failure?.status === 429) {
    arkError(res, 429, 'RateLimitExceeded.EndpointRPMExceeded', 'Request rate exceeds the RPM limit of this endpoint.', 'TooManyRequests', {
      'retry-after': String(failure.retryAfterS),
    });
    return true;
  }
  if (failure?.status === 500) {
    arkError(res, 500, 'InternalServiceError', 'The service encountered an unexpected internal error.', 'InternalServerError');
    return true;
  }

  const { model, content } = body;
  if (typeof model !== 'string' || !/seedance/i.test(model)) {
    arkError(res, 404, 'InvalidEndpointOrModel.NotFound', `The model or endpoint ${String(model)} does not exist or you do not have access to it.`, 'NotFound');
    return true;
  }
  if (!Array.isArray(content) || content.length === 0) return bad('content must be a non-empty array.', 'content');
  const texts = content.filter((c) => c?.type === 'text');
  const images = content.filter((c) => c?.type === 'image_url');
  if (texts.length > 1 || typeof texts[0]?.text !== 'string') return bad('content needs one text item.', 'content.text');
  for (const image of images) {
    if (typeof image.image_url?.url !== 'string' || image.image_url.url === '') return bad('image_url.url is required.', 'content.image_url');
    if (image.role !== undefined && !['first_frame', 'last_frame', 'reference_image'].includes(image.role)) return bad(`unknown role ${image.role}.`, 'content.role');
  }
  const { prompt, params } = parseSeedanceText(texts[0].text);
  if (params.ratio !== undefined && !RATIOS.includes(params.ratio)) return bad(`ratio ${params.ratio} is not supported.`, 'ratio');
  if (params.resolution !== undefined && !RESOLUTIONS.includes(params.resolution)) return bad(`resolution ${params.resolution} is not supported.`, 'resolution');
  if (params.camerafixed !== undefined && params.camerafixed !== 'true' && params.camerafixed !== 'false') return bad('camerafixed must be true or false.', 'camerafixed');
  const duration = Number(params.duration ?? 5);
  if (!Number.isInteger(duration) || duration < 3 || duration > 12) return bad(`duration ${params.duration} is out of range [3, 12].`, 'duration');
  if (/\bforbidden\b|违禁/.test(prompt)) {
    arkError(res, 400, 'InputTextSensitiveContentDetected', 'The request failed because the input text may contain sensitive information.', 'BadRequest');
    return true;
  }

  const id = `cgt-${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}-${randomBytes(3).toString('hex')}`;
  const size = sizeFor(params.ratio ?? '', { width: book.knobs.clipWidth, height: book.knobs.clipHeight });
  book.create(
    {
      vendor: 'seedance',
      model,
      prompt,
      duration_s: duration,
      ...size,
      body,
      params,
      imageRoles: images.map((image) => image.role ?? 'first_frame'),
    },
    id,
  );
  sendJson(res, 200, { id });
  return true;
}
