/**
 * Kling image-to-video. Written from the Kling AI developer documentation, "Image to Video", "API
 * authentication" and "Error codes" (https://app.klingai.com/global/dev/document-api/apiReference/model/imageToVideo,
 * as published mid-2025, including its "3-0 Capability Map").
 * - Auth: a JWT (HS256, signed with the SecretKey; `iss` = AccessKey, `exp` = now + 30 min,
 *   `nbf` = now − 5 s against clock skew), made fresh for every request so a long poll never expires it.
 * - `provider.api_key` = AccessKey, `provider.api_secret` = SecretKey; `api_url` is the host
 *   (e.g. https://api-singapore.klingai.com), with or without `/v1`.
 * - Mode is always `std` (the cheaper one); `duration` is the string '5' or '10'.
 */
import { createHmac } from 'node:crypto';
import { MediaProviderError } from './errors.ts';
import {
  movementInWords,
  vendorDurationFor,
  type VideoAdapter,
  type VideoProvider,
  type VideoRequest,
  type VideoResult,
} from './video-adapter.ts';
import { apiBase, createWithRetries, pollUntilDone, probeAuth, startGeneration, type VendorCall, type VendorWords } from './video-http.ts';

const MODE = 'std';

export function klingJwt(accessKey: string, secretKey: string, nowS = Math.floor(Date.now() / 1000)): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signed = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ iss: accessKey, exp: nowS + 1800, nbf: nowS - 5 })}`;
  return `${signed}.${createHmac('sha256', secretKey).update(signed).digest('base64url')}`;
}

/**
 * Image-to-video combinations that take `camera_control`, from the capability map: kling-v1 std and
 * pro at 5 s, kling-v1-5 pro at 5 s (simple only). Newer models (v1-6, v2.x) take none: the
 * movement then goes into the prompt in words.
 */
export function klingSupportsCameraControl(model: string, mode: string, duration: '5' | '10'): boolean {
  if (duration !== '5') return false;
  return (model === 'kling-v1' && (mode === 'std' || mode === 'pro')) || (model === 'kling-v1-5' && mode === 'pro');
}

export interface KlingCameraControl {
  type: 'simple';
  config: { horizontal: number; vertical: number; pan: number; tilt: number; roll: number; zoom: number };
}

/**
 * Our movement as a `simple` camera_control: exactly one non-zero field in [-10, 10], its size
 * from the intensity (0–1 → 1–10). Sign conventions per the doc: horizontal − left / + right,
 * vertical − down / + up, zoom − narrower field of view (closer) / + wider.
 * Pans and tilts use the translations `horizontal` / `vertical`, not the rotations `pan` / `tilt`:
 * the Chinese and English pages of the doc disagree about which axis those two rotate around,
 * while the translations read the same in both. Kling has no forward move, so a dolly is a zoom
 * (its words in the prompt say which). Static is no camera_control at all (none is valid with
 * every field zero).
 */
export function klingCameraControl(movement: VideoRequest['movement']): KlingCameraControl | undefined {
  const size = Math.min(10, Math.max(1, Math.round(movement.params.intensity * 10)));
  const field: Record<Exclude<VideoRequest['movement']['movement_type'], 'static'>, [keyof KlingCameraControl['config'], number]> = {
    zoom_in: ['zoom', -size],
    zoom_out: ['zoom', size],
    dolly_in: ['zoom', -size],
    dolly_out: ['zoom', size],
    pan_left: ['horizontal', -size],
    pan_right: ['horizontal', size],
    tilt_up: ['vertical', size],
    tilt_down: ['vertical', -size],
  };
  if (movement.movement_type === 'static') return undefined;
  const [name, value] = field[movement.movement_type];
  return { type: 'simple', config: { horizontal: 0, vertical: 0, pan: 0, tilt: 0, roll: 0, zoom: 0, [name]: value } };
}

/** Kling wants bare base64, without the `data:image/png;base64,` prefix. */
function klingImage(req: VideoRequest): string {
  if (req.image_url) return req.image_url;
  if (req.image_b64) return req.image_b64.replace(/^data:[^;,]+;base64,/, '');
  throw new Error('An image-to-video request needs image_url or image_b64.');
}

const words = (body: unknown): VendorWords => {
  const b = (body ?? {}) as { code?: unknown; message?: unknown };
  const vendorCode = b.code === undefined ? undefined : String(b.code);
  // 1300 platform policy, 1301 content security policy.
  return { vendorCode, vendorMessage: typeof b.message === 'string' ? b.message : undefined, moderation: vendorCode === '1300' || vendorCode === '1301' };
};

function credentials(provider: VideoProvider): { accessKey: string; secretKey: string } {
  if (!provider.api_secret) {
    throw new MediaProviderError('auth', 'Kling needs both keys: the AccessKey as API key and the SecretKey as API secret.', { retryable: false });
  }
  return { accessKey: provider.api_key, secretKey: provider.api_secret };
}

function call(provider: VideoProvider, method: 'GET' | 'POST', path: string, body?: unknown): VendorCall {
  const { accessKey, secretKey } = credentials(provider);
  return {
    method,
    url: `${apiBase(provider.api_url, '/v1')}${path}`,
    headers: () => ({ authorization: `Bearer ${klingJwt(accessKey, secretKey)}` }),
    body,
    words,
  };
}

interface KlingTaskData {
  task_id?: string;
  task_status?: string;
  task_status_msg?: string;
  task_result?: { videos?: { url?: string; duration?: string | number }[] };
}

function dataOf(body: unknown): KlingTaskData {
  const b = body as { code?: unknown; message?: unknown; data?: KlingTaskData };
  // Kling can answer HTTP 200 with a non-zero code.
  if (b.code !== 0 || !b.data || typeof b.data !== 'object') {
    throw new MediaProviderError('bad_response', `Kling answered code ${String(b.code)}: ${String(b.message ?? 'no data')}`, {
      retryable: false,
      vendorMessage: typeof b.message === 'string' ? b.message : undefined,
    });
  }
  return b.data;
}

const MODERATION_WORDS = /risk control|sensitive|policy|moderation|风控|违规|敏感/i;

export function klingRequestBody(provider: VideoProvider, req: VideoRequest) {
  const duration = String(vendorDurationFor(req.duration_s)) as '5' | '10';
  const camera = klingSupportsCameraControl(provider.model_name, MODE, duration) ? klingCameraControl(req.movement) : undefined;
  // Words when the parameters cannot say it all: no camera_control here, or a dolly sent as a zoom.
  const needsWords = !camera || req.movement.movement_type.startsWith('dolly');
  const prompt = needsWords ? `${req.prompt.trim()} ${movementInWords(req.movement)}`.trim() : req.prompt.trim();
  return {
    model_name: provider.model_name,
    image: klingImage(req),
    // The doc caps the prompt at 2500 characters.
    prompt: prompt.slice(0, 2500),
    mode: MODE,
    duration,
    ...(camera && { camera_control: camera }),
  };
}

export const klingVideoAdapter: VideoAdapter = {
  async generate(provider, req, opts): Promise<VideoResult> {
    const body = klingRequestBody(provider, req);
    const gen = startGeneration(provider.timeout_s, opts.signal);
    const created = dataOf(await createWithRetries(call(provider, 'POST', '/videos/image2video', body), gen));
    if (!created.task_id) throw new MediaProviderError('bad_response', 'Kling created a task without a task_id.', { retryable: false });
    const poll = call(provider, 'GET', `/videos/image2video/${encodeURIComponent(created.task_id)}`);
    return pollUntilDone(
      poll,
      (answer) => {
        const data = dataOf(answer);
        switch (data.task_status) {
          case 'submitted':
            return { done: false, status: { status: 'queued' } };
          case 'processing':
            return { done: false, status: { status: 'running' } };
          case 'succeed': {
            const video = data.task_result?.videos?.[0];
            if (!video?.url) throw new MediaProviderError('bad_response', 'Kling reported success without a video URL.', { retryable: false });
            const seconds = Number(video.duration) || Number(body.duration);
            return { done: true, result: { url: video.url, vendor_duration_s: seconds, usage: { seconds } } };
          }
          case 'failed': {
            const message = data.task_status_msg || 'no reason given';
            const moderation = MODERATION_WORDS.test(message);
            throw new MediaProviderError(moderation ? 'moderation' : 'upstream', `Kling task failed: ${message}`, { retryable: !moderation, vendorMessage: message });
          }
          default:
            throw new MediaProviderError('bad_response', `Kling reported an unknown task status ${String(data.task_status)}.`, { retryable: false });
        }
      },
      gen,
      opts,
    );
  },

  async testConnection(provider) {
    try {
      credentials(provider);
    } catch (err) {
      return { ok: false, latency_ms: 0, code: 'auth', message: (err as Error).message };
    }
    // Reading a task id that cannot exist is free: 401 means bad keys, 404 means they passed.
    return probeAuth(call(provider, 'GET', '/videos/image2video/connection-test-0'), provider.timeout_s);
  },
};
