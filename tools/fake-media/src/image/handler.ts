/**
 * The simulated text-to-image upstream: three vendor shapes on one HTTP handler, written from the
 * vendors' published docs (checked 2025):
 *
 * - OpenAI Images API, `POST /v1/images/generations`
 *   (https://platform.openai.com/docs/api-reference/images/create): `{ model, prompt, size, n,
 *   response_format }` → `{ created, data: [{ url } | { b64_json }] }`; URLs last 60 minutes. Volcengine
 *   Seedream (Ark `/api/v3/images/generations`) and Zhipu CogView (`/api/paas/v4/images/generations`)
 *   speak the same shape.
 * - SiliconFlow, `POST /v1/images/generations` (https://docs.siliconflow.cn/cn/api-reference/images/images-generations):
 *   the same path as OpenAI, so requests are routed by body shape — a body with `image_size` or
 *   `batch_size` is SiliconFlow's — answered `{ images: [{ url }], timings: { inference }, seed }`;
 *   errors are `{ code, message, data }`, except 401 which is the bare text "Invalid token".
 * - DashScope (通义万相 text-to-image, https://help.aliyun.com/zh/model-studio/text-to-image-api-reference):
 *   `POST /api/v1/services/aigc/text2image/image-synthesis` with `X-DashScope-Async: enable` (without
 *   it the vendor answers 403 AccessDenied) → `{ output: { task_id, task_status: "PENDING" } }`, then
 *   `GET /api/v1/tasks/{task_id}` → PENDING / RUNNING / SUCCEEDED (`output.results[].url`) / FAILED
 *   (`output.code`, `output.message`); an unknown id is `UNKNOWN`, not 404.
 *
 * Also `GET /v1/models` (OpenAI and SiliconFlow list models there; adapters use it to check a key).
 * Every accepted create request is kept in `stats.created` with the reference picture it carried
 * (SiliconFlow `image`, DashScope `input.ref_img`: a URL or a base64 data URI, whose bytes must be an
 * image), so a test can check what the studio sent.
 * Images are served at `/files/{token}.png` on this server until their URL expires (knob url_ttl_ms).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULT_IMAGE_KNOBS, ImageKnobError, requestKnobs, type ImageKnobInput, type ImageKnobs } from './knobs.ts';
import { pictureFor } from './picture.ts';

export interface FakeImageOptions {
  /** When set, API requests must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Defaults for every request (a request's header or prompt tag overrides them). */
  defaults?: ImageKnobInput;
  /** Shortcut for `defaults.urlTtlMs`. */
  urlTtlMs?: number;
  /** Model ids listed by `GET /v1/models`. */
  models?: string[];
}

export type ImageRoute =
  | 'openai.generations'
  | 'siliconflow.generations'
  | 'dashscope.submit'
  | 'dashscope.task'
  | 'models'
  | 'file'
  | 'not_found';

export interface ServedImage {
  sha256: string;
  route: ImageRoute;
  /** How the bytes left: fetched from a URL, or inline as base64 in the JSON answer. */
  via: 'url' | 'b64';
  prompt: string;
}

/** A reference picture a create request carried (SiliconFlow `image`, DashScope `input.ref_img`). */
export type ReceivedReference = { sha256: string; mime: string; bytes: number } | { url: string };

export interface CreateRequest {
  route: ImageRoute;
  prompt: string;
  /** null when the request carried none. */
  reference: ReceivedReference | null;
}

export interface FakeImageStats {
  /** Requests per route, counted whatever the answer (401 and 429 included). */
  requests: Record<ImageRoute, number>;
  /** Every create request that got past authentication and validation, with what it carried. */
  created: CreateRequest[];
  /** Every image that left the server, in order. */
  served: ServedImage[];
  /** Image URLs asked for after they expired. */
  expiredFetches: number;
}

export type FakeImageHandler = ((req: IncomingMessage, res: ServerResponse) => void) & {
  readonly stats: FakeImageStats;
  /** Set once the server knows its own address, so image URLs point back at it. */
  origin: string;
};

interface StoredImage {
  png: Buffer;
  sha256: string;
  prompt: string;
  route: ImageRoute;
  expiresAt: number;
  wrongContent: ImageKnobs['wrongContent'];
}

interface Task {
  id: string;
  prompt: string;
  knobs: ImageKnobs;
  n: number;
  width: number;
  height: number;
  seed: number;
  submittedAt: number;
  urls?: string[];
}

const MAX_BODY = 2 * 1024 * 1024;
const MAX_SIDE = 4096;
const MAX_TASKS = 10_000;
const HTML_PAGE = '<!DOCTYPE html><html><head><title>Access denied</title></head><body><h1>Please log in</h1></body></html>';

export function createFakeImageHandler(options: FakeImageOptions = {}): FakeImageHandler {
  const defaults: ImageKnobs = { ...DEFAULT_IMAGE_KNOBS, ...options.defaults, ...(options.urlTtlMs !== undefined ? { urlTtlMs: options.urlTtlMs } : {}) };
  const models = options.models ?? ['dall-e-3', 'gpt-image-1', 'Kwai-Kolors/Kolors', 'wanx2.1-t2i-turbo'];
  const stats: FakeImageStats = {
    requests: { 'openai.generations': 0, 'siliconflow.generations': 0, 'dashscope.submit': 0, 'dashscope.task': 0, models: 0, file: 0, not_found: 0 },
    created: [],
    served: [],
    expiredFetches: 0,
  };
  const files = new Map<string, StoredImage>();
  const tasks = new Map<string, Task>();
  // Create requests seen per (route, prompt), for the rate_limit knob ("the first N answer 429").
  const seen = new Map<string, number>();

  const handler = ((req, res) => {
    void handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: { message: String(e), type: 'server_error' } });
      else res.destroy();
    });
  }) as FakeImageHandler;
  Object.defineProperty(handler, 'stats', { value: stats });
  handler.origin = '';

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const path = url.pathname.replace(/\/+$/, '');
    const method = req.method ?? 'GET';

    const file = /^\/files\/([\w-]+)\.png$/.exec(path);
    if (file && method === 'GET') return serveFile(res, file[1]);

    if (path === '/v1/models' && method === 'GET') {
      stats.requests.models++;
      if (!authorised(req, res, 'openai')) return;
      return sendJson(res, 200, { object: 'list', data: models.map((id) => ({ id, object: 'model', created: 1700000000, owned_by: 'fake-media' })) });
    }

    if (path === '/v1/images/generations' && method === 'POST') {
      const body = await readJson(req, res);
      if (body === undefined) return;
      const siliconflow = 'image_size' in body || 'batch_size' in body;
      const route: ImageRoute = siliconflow ? 'siliconflow.generations' : 'openai.generations';
      stats.requests[route]++;
      if (!authorised(req, res, siliconflow ? 'siliconflow' : 'openai')) return;
      return siliconflow ? siliconflowGenerate(req, res, body) : openaiGenerate(req, res, body);
    }

    if (path === '/api/v1/services/aigc/text2image/image-synthesis' && method === 'POST') {
      stats.requests['dashscope.submit']++;
      const body = await readJson(req, res);
      if (body === undefined) return;
      if (!authorised(req, res, 'dashscope')) return;
      return dashscopeSubmit(req, res, body);
    }

    const task = /^\/api\/v1\/tasks\/([^/]+)$/.exec(path);
    if (task && method === 'GET') {
      stats.requests['dashscope.task']++;
      if (!authorised(req, res, 'dashscope')) return;
      return dashscopeTask(res, decodeURIComponent(task[1]));
    }

    stats.requests.not_found++;
    sendJson(res, 404, { error: { message: `Invalid URL (${method} ${path})`, type: 'invalid_request_error', param: null, code: null } });
  }

  function authorised(req: IncomingMessage, res: ServerResponse, vendor: 'openai' | 'siliconflow' | 'dashscope'): boolean {
    if (options.apiKey === undefined) return true;
    const key = (req.headers.authorization ?? '').replace(/^Bearer\s+/i, '');
    if (key === options.apiKey) return true;
    if (vendor === 'openai') {
      sendJson(res, 401, { error: { message: `Incorrect API key provided: ${mask(key)}. You can find your API key at https://platform.openai.com/account/api-keys.`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    } else if (vendor === 'siliconflow') {
      res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8' }).end('Invalid token');
    } else {
      sendJson(res, 401, { request_id: randomUUID(), code: 'InvalidApiKey', message: 'Invalid API-key provided.' });
    }
    return false;
  }

  /** Knobs for a create request, or undefined when the answer (an error) has been sent. */
  function knobsFor(req: IncomingMessage, res: ServerResponse, prompt: string, vendorError: (status: number, code: string, message: string) => void): ImageKnobs | undefined {
    try {
      return requestKnobs(defaults, prompt, req.headers['x-fake-image']);
    } catch (e) {
      if (!(e instanceof ImageKnobError)) throw e;
      vendorError(400, 'invalid_fake_knob', e.message);
      return undefined;
    }
  }

  /** 429 while the prompt is within its rate_limit count. */
  function rateLimited(route: ImageRoute, prompt: string, knobs: ImageKnobs, res: ServerResponse, send: (status: number, code: string, message: string) => void): boolean {
    const key = `${route}\u0000${prompt}`;
    const count = (seen.get(key) ?? 0) + 1;
    if (seen.size > 10_000) seen.clear();
    seen.set(key, count);
    if (count > knobs.rateLimit) return false;
    res.setHeader('retry-after', String(knobs.retryAfterS));
    send(429, 'rate_limit', 'Rate limit reached for images per minute. Please try again later.');
    return true;
  }

  async function openaiGenerate(req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>): Promise<void> {
    const error = (status: number, code: string, message: string) =>
      sendJson(res, status, { error: { message, type: status === 429 ? 'requests' : 'invalid_request_error', param: null, code } });
    const prompt = typeof body.prompt === 'string' ? body.prompt : '';
    if (!prompt) return error(400, 'invalid_value', "Invalid value for 'prompt': expected a non-empty string.");
    const knobs = knobsFor(req, res, prompt, error);
    if (!knobs) return;
    await sleep(knobs.latencyMs);
    if (rateLimited('openai.generations', prompt, knobs, res, (s, _c, m) => error(s, 'rate_limit_exceeded', m))) return;
    if (knobs.moderation) {
      return error(400, 'content_policy_violation', 'Your request was rejected as a result of our safety system. Your prompt may contain text that is not allowed by our safety system.');
    }
    const size = parseSize(typeof body.size === 'string' ? body.size : '1024x1024', 'x');
    if (!size) return error(400, 'invalid_value', `Invalid value for 'size': ${String(body.size)}.`);
    const n = typeof body.n === 'number' ? body.n : 1;
    if (!Number.isInteger(n) || n < 1 || n > 10) return error(400, 'invalid_value', "Invalid value for 'n': must be between 1 and 10.");
    // gpt-image models always answer base64 and take no response_format; dall-e defaults to URLs.
    // The generations endpoint takes no reference picture (that is /images/edits): nothing to record.
    stats.created.push({ route: 'openai.generations', prompt, reference: null });
    const b64 = body.response_format === 'b64_json' || (typeof body.model === 'string' && body.model.startsWith('gpt-image'));
    const data: ({ url: string } | { b64_json: string })[] = [];
    for (let i = 0; i < n; i++) {
      const png = await pictureFor(prompt, i, 0, size.width, size.height);
      if (b64) {
        stats.served.push({ sha256: sha256(png), route: 'openai.generations', via: 'b64', prompt });
        data.push({ b64_json: png.toString('base64') });
      } else {
        data.push({ url: store(png, prompt, 'openai.generations', knobs) });
      }
    }
    sendJson(res, 200, { created: Math.floor(Date.now() / 1000), data });
  }

  async function siliconflowGenerate(req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>): Promise<void> {
    const error = (status: number, code: string, message: string) => sendJson(res, status, { code: siliconflowCode(code), message, data: null });
    const prompt = typeof body.prompt === 'string' ? body.prompt : '';
    if (!prompt) return error(400, 'invalid', 'prompt is required');
    const knobs = knobsFor(req, res, prompt, error);
    if (!knobs) return;
    const started = Date.now();
    await sleep(knobs.latencyMs);
    if (rateLimited('siliconflow.generations', prompt, knobs, res, error)) return;
    if (knobs.moderation) return error(400, 'moderation', 'The prompt contains sensitive content and was rejected by content review.');
    const size = parseSize(typeof body.image_size === 'string' ? body.image_size : '1024x1024', 'x');
    if (!size) return error(400, 'invalid', `image_size ${String(body.image_size)} is not supported`);
    const n = typeof body.batch_size === 'number' ? body.batch_size : 1;
    if (!Number.isInteger(n) || n < 1 || n > 4) return error(400, 'invalid', 'batch_size must be between 1 and 4');
    const reference = referenceOf(body.image);
    if (reference === undefined) return error(400, 'invalid', 'image must be an image URL or a base64 data URI (data:image/png;base64,…)');
    stats.created.push({ route: 'siliconflow.generations', prompt, reference });
    const seed = typeof body.seed === 'number' ? body.seed : hash32(prompt) % 9_999_999_999;
    const images: { url: string }[] = [];
    for (let i = 0; i < n; i++) images.push({ url: store(await pictureFor(prompt, i, seed, size.width, size.height), prompt, 'siliconflow.generations', knobs) });
    sendJson(res, 200, { images, timings: { inference: (Date.now() - started) / 1000 }, seed });
  }

  async function dashscopeSubmit(req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>): Promise<void> {
    const error = (status: number, code: string, message: string) => sendJson(res, status, { request_id: randomUUID(), code, message });
    if (String(req.headers['x-dashscope-async'] ?? '').toLowerCase() !== 'enable') {
      return error(403, 'AccessDenied', 'current user api does not support synchronous calls');
    }
    const input = (body.input ?? {}) as Record<string, unknown>;
    const parameters = (body.parameters ?? {}) as Record<string, unknown>;
    const prompt = typeof input.prompt === 'string' ? input.prompt : '';
    if (!prompt) return error(400, 'InvalidParameter', 'input.prompt is required');
    const knobs = knobsFor(req, res, prompt, (s, _c, m) => error(s, 'InvalidParameter', m));
    if (!knobs) return;
    await sleep(knobs.latencyMs);
    if (rateLimited('dashscope.submit', prompt, knobs, res, (s) => error(s, 'Throttling.RateQuota', 'Requests rate limit exceeded, please try again later.'))) return;
    if (knobs.moderation) return error(400, 'DataInspectionFailed', 'Input data may contain inappropriate content.');
    const size = parseSize(typeof parameters.size === 'string' ? parameters.size : '1024*1024', '*');
    if (!size) return error(400, 'InvalidParameter', `size ${String(parameters.size)} is not supported`);
    const n = typeof parameters.n === 'number' ? parameters.n : 1;
    if (!Number.isInteger(n) || n < 1 || n > 4) return error(400, 'InvalidParameter', 'n must be between 1 and 4');
    const reference = referenceOf(input.ref_img);
    if (reference === undefined) return error(400, 'InvalidParameter', 'input.ref_img must be an image URL or a base64 data URI');
    stats.created.push({ route: 'dashscope.submit', prompt, reference });
    if (tasks.size >= MAX_TASKS) tasks.delete(tasks.keys().next().value!);
    const task: Task = { id: randomUUID(), prompt, knobs, n, ...size, seed: typeof parameters.seed === 'number' ? parameters.seed : hash32(prompt), submittedAt: Date.now() };
    tasks.set(task.id, task);
    sendJson(res, 200, { request_id: randomUUID(), output: { task_id: task.id, task_status: 'PENDING' } });
  }

  async function dashscopeTask(res: ServerResponse, id: string): Promise<void> {
    const task = tasks.get(id);
    const request_id = randomUUID();
    if (!task) return sendJson(res, 200, { request_id, output: { task_id: id, task_status: 'UNKNOWN' } });
    const elapsed = Date.now() - task.submittedAt;
    const times = { submit_time: stamp(task.submittedAt), scheduled_time: stamp(task.submittedAt + 1) };
    const pendingFor = task.knobs.taskMs * 0.3;
    if (elapsed < pendingFor) return sendJson(res, 200, { request_id, output: { task_id: id, task_status: 'PENDING', ...times } });
    if (task.knobs.failMidTask && elapsed >= task.knobs.taskMs * 0.5) {
      return sendJson(res, 200, { request_id, output: { task_id: id, task_status: 'FAILED', ...times, end_time: stamp(Date.now()), code: 'InternalError.Algo', message: 'Algorithm process error: the task failed while generating.' } });
    }
    if (elapsed < task.knobs.taskMs) {
      return sendJson(res, 200, { request_id, output: { task_id: id, task_status: 'RUNNING', ...times, task_metrics: { TOTAL: task.n, SUCCEEDED: 0, FAILED: 0 } } });
    }
    if (!task.urls) {
      task.urls = [];
      for (let i = 0; i < task.n; i++) task.urls.push(store(await pictureFor(task.prompt, i, task.seed, task.width, task.height), task.prompt, 'dashscope.submit', task.knobs));
    }
    sendJson(res, 200, {
      request_id,
      output: { task_id: id, task_status: 'SUCCEEDED', ...times, end_time: stamp(Date.now()), results: task.urls.map((url) => ({ url })), task_metrics: { TOTAL: task.n, SUCCEEDED: task.n, FAILED: 0 } },
      usage: { image_count: task.n },
    });
  }

  function store(png: Buffer, prompt: string, route: ImageRoute, knobs: ImageKnobs): string {
    const now = Date.now();
    // Expired files are only kept long enough to answer "expired"; this bounds memory on a long-lived server.
    for (const [token, f] of files) if (f.expiresAt + 60_000 < now) files.delete(token);
    const token = randomUUID();
    const expiresAt = now + knobs.urlTtlMs;
    files.set(token, { png, sha256: sha256(png), prompt, route, expiresAt, wrongContent: knobs.wrongContent });
    // Shaped like the signed object-storage URLs vendors hand out (OSS / S3 style).
    return `${handler.origin}/files/${token}.png?Expires=${Math.floor(expiresAt / 1000)}&Signature=${sha256(Buffer.from(token)).slice(0, 24)}`;
  }

  function serveFile(res: ServerResponse, token: string): void {
    stats.requests.file++;
    const f = files.get(token);
    if (!f || Date.now() >= f.expiresAt) {
      if (f) stats.expiredFetches++;
      // What Alibaba OSS answers for an expired signed URL.
      res.writeHead(403, { 'content-type': 'application/xml' }).end('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired.</Message></Error>');
      return;
    }
    if (f.wrongContent !== 'none') {
      res.writeHead(200, { 'content-type': f.wrongContent === 'html-as-png' ? 'image/png' : 'text/html; charset=utf-8' }).end(HTML_PAGE);
      return;
    }
    stats.served.push({ sha256: f.sha256, route: f.route, via: 'url', prompt: f.prompt });
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': f.png.length }).end(f.png);
  }

  return handler;
}

async function readJson(req: IncomingMessage, res: ServerResponse): Promise<Record<string, unknown> | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) {
      sendJson(res, 413, { error: { message: 'Request body too large', type: 'invalid_request_error' } });
      return undefined;
    }
    chunks.push(chunk);
  }
  try {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (body && typeof body === 'object' && !Array.isArray(body)) return body as Record<string, unknown>;
  } catch {
    // answered below
  }
  sendJson(res, 400, { error: { message: 'We could not parse the JSON body of your request.', type: 'invalid_request_error', param: null, code: null } });
  return undefined;
}

/**
 * A reference picture as the vendors take it: an http(s) URL, or a data URI whose bytes are an image
 * (checked by signature, as a vendor decoding it would fail otherwise). null: none sent; undefined: unusable.
 */
function referenceOf(value: unknown): ReceivedReference | null | undefined {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string') return undefined;
  if (/^https?:\/\//i.test(value)) return { url: value };
  const m = /^data:(image\/(?:png|jpeg|webp));base64,([A-Za-z0-9+/]+={0,2})$/.exec(value);
  if (!m) return undefined;
  const bytes = Buffer.from(m[2], 'base64');
  const signature = bytes.subarray(0, 4).toString('hex');
  const looksLike = { 'image/png': signature === '89504e47', 'image/jpeg': signature.startsWith('ffd8ff'), 'image/webp': bytes.subarray(8, 12).toString('latin1') === 'WEBP' };
  if (!looksLike[m[1] as keyof typeof looksLike]) return undefined;
  return { sha256: sha256(bytes), mime: m[1], bytes: bytes.length };
}

function parseSize(value: string, sep: 'x' | '*'): { width: number; height: number } | undefined {
  const [w, h] = value.split(sep).map(Number);
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1 || w > MAX_SIDE || h > MAX_SIDE) return undefined;
  return { width: w, height: h };
}

function siliconflowCode(code: string): number {
  // Numeric codes in SiliconFlow's `{ code, message, data }` error body; the values are illustrative.
  return code === 'rate_limit' ? 50603 : code === 'moderation' ? 30011 : 20012;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) }).end(json);
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function hash32(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32LE(0);
}

function mask(key: string): string {
  return key.length <= 8 ? '****' : `${key.slice(0, 3)}****${key.slice(-4)}`;
}

function stamp(ms: number): string {
  // DashScope writes local times without a zone: "2025-01-08 16:03:59.840".
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}
