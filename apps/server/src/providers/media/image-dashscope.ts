/**
 * DashScope 通义万相 text-to-image, async tasks (https://help.aliyun.com/zh/model-studio/text-to-image-api-reference, 2025):
 * `POST {root}/api/v1/services/aigc/text2image/image-synthesis` with `X-DashScope-Async: enable`
 * (required: the API has no synchronous mode) → `{ output: { task_id, task_status } }`; then
 * `GET {root}/api/v1/tasks/{task_id}` until SUCCEEDED (`output.results[].url`, valid 24 h) or FAILED /
 * CANCELED / UNKNOWN (`output.code`, `output.message`). Errors are `{ request_id, code, message }`;
 * refused content is `DataInspectionFailed` (input) or `IPInfringementSuspect` / `DataInspection…`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import type { ImageAdapter, ImageProviderConfig } from './image-adapter.ts';
import { checkWith, MAX_TEST_TIMEOUT_S } from './media-connection-check.ts';
import { vendorImageSize } from './image-sizes.ts';
import { callJson, cancelled, trimSlash, type VendorError } from './media-http.ts';
import { MediaProviderError } from './errors.ts';

/** Polls start quick (small images finish in seconds) and settle at a pace the vendor tolerates. */
const POLL_SCHEDULE_MS = [250, 500, 1000, 2000, 3000];
/** A task still not done after this is given up (the vendor keeps tasks 24 h; a user will not wait). */
const TASK_DEADLINE_MS = 10 * 60 * 1000;
const MAX_N = 4;

const MODERATION_CODES = /DataInspection|IPInfringement|InappropriateContent/i;

export function dashscopeVendorError(_status: number, json: unknown, text: string): VendorError {
  const body = json as { code?: string; message?: string } | undefined;
  const vendorCode = body?.code;
  return { message: body?.message ?? (text || 'no message'), vendorCode, moderation: vendorCode !== undefined && MODERATION_CODES.test(vendorCode) };
}

interface TaskOutput {
  task_id?: string;
  task_status?: string;
  results?: { url?: string; code?: string; message?: string }[];
  task_metrics?: { TOTAL?: number; SUCCEEDED?: number; FAILED?: number };
  code?: string;
  message?: string;
}

export const dashscopeImageAdapter: ImageAdapter = {
  api_format: 'dashscope',
  // `input.ref_img`: a public URL or a base64 data URI; the studio's media is private, so it sends the latter.
  acceptsReferenceImage: true,

  async generate(provider, req, opts) {
    const root = apiRoot(provider.api_url);
    const size = vendorImageSize('dashscope', provider.model_name, req);
    const call = (url: string, init: { method: 'GET' | 'POST'; headers?: Record<string, string>; body?: unknown }, idempotent: boolean) =>
      callJson(url, { ...init, headers: { ...auth(provider), ...init.headers } }, {
        signal: opts.signal,
        timeoutMs: provider.timeout_s * 1000,
        vendorError: dashscopeVendorError,
        idempotent,
      });

    const input: Record<string, unknown> = { prompt: req.prompt };
    // wanx-v1 takes a reference picture as `ref_img`; other models ignore it.
    if (req.reference_image_url) input.ref_img = req.reference_image_url;
    const submitted = (await call(`${root}/api/v1/services/aigc/text2image/image-synthesis`, {
      method: 'POST',
      headers: { 'X-DashScope-Async': 'enable' },
      body: { model: provider.model_name, input, parameters: { size: size.param, n: Math.min(MAX_N, req.n) } },
    }, false)) as { output?: TaskOutput };
    const taskId = submitted.output?.task_id;
    if (!taskId) throw new MediaProviderError('bad_response', 'The provider accepted the task but sent no task_id.');

    const deadline = Date.now() + TASK_DEADLINE_MS;
    let lastStatus = '';
    for (let poll = 0; ; poll++) {
      try {
        await sleep(POLL_SCHEDULE_MS[Math.min(poll, POLL_SCHEDULE_MS.length - 1)], undefined, { signal: opts.signal });
      } catch {
        throw cancelled();
      }
      const answer = (await call(`${root}/api/v1/tasks/${encodeURIComponent(taskId)}`, { method: 'GET' }, true)) as { output?: TaskOutput; usage?: { image_count?: number } };
      const output = answer.output ?? {};
      const status = output.task_status ?? '';
      if (status === 'SUCCEEDED') {
        const urls = (output.results ?? []).map((r) => r.url).filter((u): u is string => typeof u === 'string');
        // A task may succeed for some images only (a result with code/message instead of url).
        if (urls.length === 0) {
          const failed = output.results?.find((r) => r.code);
          throw failure(failed?.code, failed?.message ?? 'The task succeeded without any image.');
        }
        return { images: urls.map((url) => ({ url })), usage: { images: answer.usage?.image_count ?? urls.length } };
      }
      if (status === 'FAILED' || status === 'CANCELED' || status === 'UNKNOWN') {
        throw failure(output.code, output.message ?? `The task ended ${status}.`, status);
      }
      if (status !== lastStatus && (status === 'PENDING' || status === 'RUNNING')) {
        lastStatus = status;
        opts.onStatus?.(status === 'PENDING' ? { status: 'queued' } : { status: 'running', ...percentOf(output) });
      }
      if (Date.now() > deadline) {
        throw new MediaProviderError('timeout', `The task ${taskId} did not finish within ${TASK_DEADLINE_MS / 60000} minutes.`);
      }
    }
  },

  // Asking for a task that does not exist is authenticated and free: the vendor answers 200 UNKNOWN
  // with a good key and 401 InvalidApiKey with a bad one.
  testConnection: (provider) =>
    checkWith('queried a task', () =>
      callJson(`${apiRoot(provider.api_url)}/api/v1/tasks/${randomUUID()}`, { method: 'GET', headers: auth(provider) }, {
        signal: AbortSignal.timeout(MAX_TEST_TIMEOUT_S * 1000 + 1000),
        timeoutMs: Math.min(provider.timeout_s, MAX_TEST_TIMEOUT_S) * 1000,
        vendorError: dashscopeVendorError,
        retries: 0,
        idempotent: true,
      }),
    ),
};

function failure(code: string | undefined, message: string, status = 'FAILED'): MediaProviderError {
  if (code && MODERATION_CODES.test(code)) return new MediaProviderError('moderation', `The provider refused the prompt: ${message}`, { vendorMessage: message, vendorCode: code, retryable: false });
  // A failed task may well succeed when submitted again; the engine decides whether to.
  return new MediaProviderError('upstream', `The image task ${status.toLowerCase()}${code ? ` (${code})` : ''}: ${message}`, { vendorMessage: message, vendorCode: code, retryable: status !== 'UNKNOWN' });
}

function percentOf(output: TaskOutput): { percent?: number } {
  const total = output.task_metrics?.TOTAL;
  const done = (output.task_metrics?.SUCCEEDED ?? 0) + (output.task_metrics?.FAILED ?? 0);
  return total ? { percent: Math.round((done / total) * 100) } : {};
}

/** Accepts `https://dashscope.aliyuncs.com`, `…/api/v1` or the international host alike. */
function apiRoot(apiUrl: string): string {
  return trimSlash(apiUrl).replace(/\/api\/v1$/, '').replace(/\/compatible-mode\/v1$/, '');
}

function auth(provider: ImageProviderConfig): Record<string, string> {
  return { authorization: `Bearer ${provider.api_key}` };
}
