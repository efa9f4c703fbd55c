/**
 * Simulated Kling image-to-video API. Follows the Kling AI developer documentation, "Image to Video"
 * and "API authentication" / "Error codes" (https://app.klingai.com/global/dev/document-api/apiReference/model/imageToVideo,
 * as published mid-2025, with the "3-0 Capability Map"):
 * - auth: `Authorization: Bearer <JWT>`, HS256 signed with the SecretKey, `iss` = AccessKey, `exp`, `nbf`;
 * - `POST /v1/videos/image2video` → `{ code: 0, message, request_id, data: { task_id, task_status: 'submitted', … } }`;
 * - `GET /v1/videos/image2video/{task_id}` → `task_status` submitted | processing | succeed | failed,
 *   `task_status_msg`, `task_result.videos[{ id, url, duration }]` (duration is a string of seconds);
 * - errors: HTTP status plus a numeric `code` (1000–1004 auth, 1201 bad parameter, 1301 content policy,
 *   1302 rate limit, 5000 server).
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerOf, readJson, sendJson } from '../http-kit.ts';
import type { FakeVideoTask, TaskBook, TaskPhase } from './tasks.ts';

export const KLING_MODELS = ['kling-v1', 'kling-v1-5', 'kling-v1-6', 'kling-v2-master', 'kling-v2-1', 'kling-v2-1-master', 'kling-v2-5-turbo'];

/**
 * Model / mode / duration combinations that accept `camera_control` in image-to-video, from the
 * capability map: kling-v1 std and pro at 5 s, kling-v1-5 pro at 5 s ("simple" only). Anything else
 * is answered 1201, as the vendor does, so that a client must leave it out.
 */
export function klingSupportsCameraControl(model: string, mode: string, duration: string): boolean {
  if (duration !== '5') return false;
  return (model === 'kling-v1' && (mode === 'std' || mode === 'pro')) || (model === 'kling-v1-5' && mode === 'pro');
}

const CAMERA_FIELDS = ['horizontal', 'vertical', 'pan', 'tilt', 'roll', 'zoom'] as const;

export interface KlingCredentials {
  accessKey: string;
  secretKey: string;
}

function klingError(res: ServerResponse, status: number, code: number, message: string, headers: Record<string, string> = {}) {
  sendJson(res, status, { code, message, request_id: randomUUID() }, headers);
}

const b64urlJson = (part: string): Record<string, unknown> | undefined => {
  try {
    const value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return value && typeof value === 'object' ? value : undefined;
  } catch {
    return undefined;
  }
};

/** Checks the JWT as the vendor does; returns the vendor's error or undefined when it is good. */
export function verifyKlingToken(token: string | undefined, creds: KlingCredentials, nowS = Date.now() / 1000): { code: number; message: string } | undefined {
  if (!token) return { code: 1001, message: 'Authorization is empty' };
  const parts = token.split('.');
  if (parts.length !== 3) return { code: 1002, message: 'Authorization is invalid' };
  const header = b64urlJson(parts[0]);
  const payload = b64urlJson(parts[1]);
  if (!header || !payload || header.alg !== 'HS256') return { code: 1002, message: 'Authorization is invalid' };
  const expected = createHmac('sha256', creds.secretKey).update(`${parts[0]}.${parts[1]}`).digest();
  const given = Buffer.from(parts[2], 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected) || payload.iss !== creds.accessKey) {
    return { code: 1000, message: 'Authentication failed' };
  }
  if (typeof payload.nbf === 'number' && payload.nbf > nowS) return { code: 1003, message: 'Authorization is not yet valid' };
  if (typeof payload.exp !== 'number' || payload.exp <= nowS) return { code: 1004, message: 'Authorization has expired' };
  return undefined;
}

/** `phase` is read once by the caller: read again here, a task could pass into success in between and be reported done without its URL. */
function taskView(task: FakeVideoTask, phase: TaskPhase, videoUrl?: string) {
  const status = { queued: 'submitted', running: 'processing', succeeded: 'succeed', failed: 'failed' }[phase];
  return {
    task_id: task.id,
    task_status: status,
    task_status_msg: phase === 'failed' ? task.failMessage : '',
    task_info: {},
    created_at: task.createdAt,
    updated_at: Date.now(),
    ...(videoUrl && { task_result: { videos: [{ id: `${task.id}-0`, url: videoUrl, duration: String(task.duration_s) }] } }),
  };
}

/** Answers Kling's routes; returns false for paths that are not Kling's. */
export async function handleKling(req: IncomingMessage, res: ServerResponse, path: string, book: TaskBook, creds: KlingCredentials): Promise<boolean> {
  if (!path.startsWith('/v1/videos/image2video')) return false;
  const authError = verifyKlingToken(bearerOf(req), creds);
  if (authError) {
    klingError(res, 401, authError.code, authError.message);
    return true;
  }

  const taskMatch = /^\/v1\/videos\/image2video\/([^/]+)$/.exec(path);
  if (req.method === 'GET' && taskMatch) {
    book.stats.polls++;
    const task = book.tasks.get(decodeURIComponent(taskMatch[1]));
    if (!task || task.vendor !== 'kling') {
      klingError(res, 404, 1203, 'task not found');
      return true;
    }
    const phase = book.phase(task);
    const url = phase === 'succeeded' ? await book.videoUrl(task) : undefined;
    sendJson(res, 200, { code: 0, message: 'SUCCEED', request_id: randomUUID(), data: taskView(task, phase, url) });
    return true;
  }
  if (req.method !== 'POST' || path !== '/v1/videos/image2video') {
    klingError(res, 404, 1202, 'Invalid request method or path');
    return true;
  }

  const body = (await readJson(req)) as Record<string, unknown> | undefined;
  if (!body || typeof body !== 'object') {
    klingError(res, 400, 1200, 'Invalid request parameters: body is not JSON');
    return true;
  }
  const failure = book.takeCreateFailure();
  if (failure?.status === 429) {
    klingError(res, 429, 1302, 'The API request is too fast, please slow down the request frequency', { 'retry-after': String(failure.retryAfterS) });
    return true;
  }
  if (failure?.status === 500) {
    klingError(res, 500, 5000, 'Server internal error');
    return true;
  }

  const model = body.model_name === undefined ? 'kling-v1' : body.model_name;
  const mode = body.mode === undefined ? 'std' : body.mode;
  const duration = body.duration === undefined ? '5' : body.duration;
  const bad = (message: string) => (klingError(res, 400, 1201, message), true);
  if (typeof model !== 'string' || !KLING_MODELS.includes(model)) return bad(`model_name is invalid: ${String(model)}`);
  if (mode !== 'std' && mode !== 'pro') return bad('mode must be std or pro');
  // The vendor wants the strings '5' | '10'; a number is a parameter error.
  if (duration !== '5' && duration !== '10') return bad('duration must be "5" or "10"');
  if (typeof body.image !== 'string' || body.image === '') return bad('image is required');
  if (body.image.startsWith('data:')) return bad('image: Base64 must not carry a data: prefix');
  if (body.prompt !== undefined && (typeof body.prompt !== 'string' || body.prompt.length > 2500)) return bad('prompt must be at most 2500 characters');
  if (body.cfg_scale !== undefined && (typeof body.cfg_scale !== 'number' || body.cfg_scale < 0 || body.cfg_scale > 1)) return bad('cfg_scale must be in [0, 1]');

  const camera = body.camera_control;
  if (camera !== undefined && camera !== null) {
    if (!klingSupportsCameraControl(model, mode, duration)) return bad(`camera_control is not supported by ${model} ${mode} ${duration}s`);
    const { type, config } = camera as { type?: unknown; config?: Record<string, unknown> };
    if (type !== 'simple') return bad('camera_control.type: only simple is accepted here');
    if (!config || typeof config !== 'object') return bad('camera_control.config is required for type simple');
    const nonZero = CAMERA_FIELDS.filter((field) => config[field] !== undefined && config[field] !== 0);
    if (nonZero.length !== 1) return bad('camera_control.config: exactly one of the six fields must be non-zero');
    const value = config[nonZero[0]];
    if (typeof value !== 'number' || value < -10 || value > 10) return bad(`camera_control.config.${nonZero[0]} must be in [-10, 10]`);
  }
  if (typeof body.prompt === 'string' && /\bforbidden\b|违禁/.test(body.prompt)) {
    klingError(res, 400, 1301, 'Failure to pass the risk control system');
    return true;
  }

  const task = book.create({
    vendor: 'kling',
    model,
    prompt: typeof body.prompt === 'string' ? body.prompt : '',
    duration_s: Number(duration),
    width: book.knobs.clipWidth,
    height: book.knobs.clipHeight,
    body,
    camera_control: camera ?? null,
  });
  sendJson(res, 200, { code: 0, message: 'SUCCEED', request_id: randomUUID(), data: taskView(task, book.phase(task)) });
  return true;
}
