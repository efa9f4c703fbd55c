/**
 * What the simulated image vendors can be asked to do, per server (options) and per request — through
 * an `X-Fake-Image` header or a `[fake: …]` tag in the prompt, both `key=value` pairs separated by
 * `,` or `;` (a bare key means `true`):
 *
 *   latency_ms=200        wait before answering a create request
 *   task_ms=1500          DashScope: how long a task takes from submit to SUCCEEDED
 *   fail_mid_task         DashScope: the task reports FAILED once it has been RUNNING
 *   rate_limit=2          the first 2 create requests with this prompt answer 429
 *   retry_after_s=1       the Retry-After sent with a 429
 *   moderation            refuse the prompt as the vendor's safety system does
 *   url_ttl_ms=500        image URLs stop working after this long (vendors: 1 h – 24 h)
 *   wrong_content=html-as-png | html
 *                         image URLs serve an HTML page labelled image/png, or as text/html
 */
export interface ImageKnobs {
  latencyMs: number;
  taskMs: number;
  failMidTask: boolean;
  rateLimit: number;
  retryAfterS: number;
  moderation: boolean;
  urlTtlMs: number;
  wrongContent: 'none' | 'html-as-png' | 'html';
}

export type ImageKnobInput = Partial<ImageKnobs>;

export const DEFAULT_IMAGE_KNOBS: ImageKnobs = {
  latencyMs: 0,
  taskMs: 300,
  failMidTask: false,
  rateLimit: 0,
  retryAfterS: 1,
  moderation: false,
  urlTtlMs: 60 * 60 * 1000,
  wrongContent: 'none',
};

export class ImageKnobError extends Error {}

const TAG = /\[fake:([^\]]*)\]/i;

/** Knobs for one request: server defaults, then the prompt's tag, then the header. */
export function requestKnobs(defaults: ImageKnobs, prompt: string, header: string | string[] | undefined): ImageKnobs {
  let knobs = { ...defaults };
  const tag = TAG.exec(prompt)?.[1];
  if (tag) knobs = apply(knobs, tag);
  const h = Array.isArray(header) ? header.join(';') : header;
  if (h) knobs = apply(knobs, h);
  return knobs;
}

function apply(knobs: ImageKnobs, spec: string): ImageKnobs {
  const out = { ...knobs };
  for (const part of spec.split(/[;,]/)) {
    const [rawKey, rawValue] = part.split('=').map((s) => s.trim());
    if (!rawKey) continue;
    const key = rawKey.toLowerCase();
    const num = () => {
      const n = Number(rawValue);
      if (!Number.isFinite(n) || n < 0) throw new ImageKnobError(`fake knob ${key} needs a number >= 0, got "${rawValue}"`);
      return n;
    };
    const bool = () => rawValue === undefined || rawValue === 'true' || rawValue === '1';
    switch (key) {
      case 'latency_ms': out.latencyMs = num(); break;
      case 'task_ms': out.taskMs = num(); break;
      case 'fail_mid_task': out.failMidTask = bool(); break;
      case 'rate_limit': out.rateLimit = num(); break;
      case 'retry_after_s': out.retryAfterS = num(); break;
      case 'moderation': out.moderation = bool(); break;
      case 'url_ttl_ms': out.urlTtlMs = num(); break;
      case 'wrong_content':
        if (rawValue !== 'html-as-png' && rawValue !== 'html' && rawValue !== 'none') throw new ImageKnobError(`fake knob wrong_content is html-as-png, html or none, got "${rawValue}"`);
        out.wrongContent = rawValue;
        break;
      default:
        throw new ImageKnobError(`unknown fake knob "${key}"`);
    }
  }
  return out;
}
