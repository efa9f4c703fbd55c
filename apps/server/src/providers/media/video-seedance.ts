/**
 * Seedance image-to-video on Volcengine Ark. Written from the Ark docs "创建视频生成任务 API"
 * (https://www.volcengine.com/docs/82379/1520757) and "查询视频生成任务 API"
 * (https://www.volcengine.com/docs/82379/1521309), as published mid-2025.
 * - Auth: `Authorization: Bearer <Ark API key>`; `api_url` is e.g. https://ark.cn-beijing.volces.com/api/v3
 *   (with or without `/api/v3`); `model_name` is the model id or an endpoint id (ep-…).
 * - Parameters ride at the end of the text content: `--ratio 9:16 --dur 5 --camerafixed false --resolution 720p`.
 * - Seedance takes no camera parameters besides `camerafixed`: a moving shot is described in words.
 */
import { MediaProviderError } from './errors.ts';
import { movementInWords, vendorDurationFor, type VideoAdapter, type VideoProvider, type VideoRequest, type VideoResult } from './video-adapter.ts';
import { apiBase, createWithRetries, pollUntilDone, probeAuth, startGeneration, type VendorCall, type VendorWords } from './video-http.ts';

const TASKS_PATH = '/contents/generations/tasks';
/** Clips are fetched and fitted locally; 720p is the Lite models' default and the cheaper choice. */
const RESOLUTION = '720p';

/** Ark takes base64 only as a data URL, so the image's type must be named. */
function imageUrlOf(req: VideoRequest): string {
  if (req.image_url) return req.image_url;
  if (!req.image_b64) throw new Error('An image-to-video request needs image_url or image_b64.');
  if (req.image_b64.startsWith('data:')) return req.image_b64;
  const head = Buffer.from(req.image_b64.slice(0, 24), 'base64');
  const mime =
    head[0] === 0x89 && head[1] === 0x50 ? 'image/png' : head[0] === 0xff && head[1] === 0xd8 ? 'image/jpeg' : head.subarray(8, 12).toString('latin1') === 'WEBP' ? 'image/webp' : 'image/png';
  return `data:${mime};base64,${req.image_b64}`;
}

export function seedanceRequestBody(provider: VideoProvider, req: VideoRequest) {
  const fixed = req.movement.movement_type === 'static';
  const prompt = fixed ? req.prompt.trim() : `${req.prompt.trim()} ${movementInWords(req.movement)}`.trim();
  const params = `--ratio ${req.aspect_ratio} --dur ${vendorDurationFor(req.duration_s)} --camerafixed ${fixed} --resolution ${RESOLUTION}`;
  return {
    model: provider.model_name,
    content: [
      // A "--" inside the prompt would be read as a parameter; the vendor has no escape for it.
      { type: 'text', text: `${prompt.replace(/--+/g, '—')} ${params}` },
      { type: 'image_url', image_url: { url: imageUrlOf(req) }, role: 'first_frame' },
    ],
  };
}

const words = (body: unknown): VendorWords => {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const vendorCode = typeof error?.code === 'string' ? error.code : undefined;
  return {
    vendorCode,
    vendorMessage: typeof error?.message === 'string' ? error.message : undefined,
    // InputTextSensitiveContentDetected, InputImageSensitiveContentDetected, OutputVideoSensitiveContentDetected, …
    moderation: !!vendorCode && /Sensitive|Risk/i.test(vendorCode),
  };
};

function call(provider: VideoProvider, method: 'GET' | 'POST', path: string, body?: unknown): VendorCall {
  return {
    method,
    url: `${apiBase(provider.api_url, '/api/v3')}${path}`,
    headers: () => ({ authorization: `Bearer ${provider.api_key}` }),
    body,
    words,
  };
}

interface ArkTask {
  id?: string;
  status?: string;
  content?: { video_url?: string };
  duration?: number;
  error?: { code?: string; message?: string } | null;
}

export const seedanceVideoAdapter: VideoAdapter = {
  async generate(provider, req, opts): Promise<VideoResult> {
    const body = seedanceRequestBody(provider, req);
    const requested = vendorDurationFor(req.duration_s);
    const gen = startGeneration(provider.timeout_s, opts.signal);
    const created = (await createWithRetries(call(provider, 'POST', TASKS_PATH, body), gen)) as ArkTask;
    if (typeof created.id !== 'string' || created.id === '') throw new MediaProviderError('bad_response', 'Ark created a task without an id.', { retryable: false });
    return pollUntilDone(
      call(provider, 'GET', `${TASKS_PATH}/${encodeURIComponent(created.id)}`),
      (answer) => {
        const task = answer as ArkTask;
        switch (task.status) {
          case 'queued':
            return { done: false, status: { status: 'queued' } };
          case 'running':
            return { done: false, status: { status: 'running' } };
          case 'succeeded': {
            const url = task.content?.video_url;
            if (!url) throw new MediaProviderError('bad_response', 'Ark reported success without a video_url.', { retryable: false });
            const seconds = typeof task.duration === 'number' && task.duration > 0 ? task.duration : requested;
            return { done: true, result: { url, vendor_duration_s: seconds, usage: { seconds } } };
          }
          case 'failed': {
            const { vendorMessage, moderation } = words({ error: task.error });
            const message = vendorMessage ?? task.error?.code ?? 'no reason given';
            throw new MediaProviderError(moderation ? 'moderation' : 'upstream', `Seedance task failed: ${message}`, { retryable: !moderation, vendorMessage: message });
          }
          case 'cancelled':
            throw new MediaProviderError('cancelled', 'The Seedance task was cancelled at the vendor.', { retryable: false });
          default:
            throw new MediaProviderError('bad_response', `Ark reported an unknown task status ${String(task.status)}.`, { retryable: false });
        }
      },
      gen,
      opts,
    );
  },

  async testConnection(provider) {
    // Reading a task id that cannot exist is free: 401 means a bad key, 404 means it passed.
    return probeAuth(call(provider, 'GET', `${TASKS_PATH}/cgt-connection-test-0`), provider.timeout_s);
  },
};
