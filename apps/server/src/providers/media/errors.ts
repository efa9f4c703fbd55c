/**
 * What went wrong with a media vendor (image, speech, image-to-video), as a code the run engine acts
 * on: retry with backoff (honouring retryAfterMs), fail over, or stop and tell the user why — in the
 * vendor's own words for a moderation refusal or a failed task.
 */
export type MediaErrorCode = 'auth' | 'rate_limited' | 'moderation' | 'timeout' | 'bad_response' | 'upstream' | 'cancelled';

export interface MediaProviderErrorOptions {
  retryable?: boolean;
  retryAfterMs?: number;
  /** The vendor's own words (never carries secrets: vendors do not echo keys). */
  vendorMessage?: string;
  /** The vendor's error code (`content_policy_violation`, `DataInspectionFailed` …). */
  vendorCode?: string;
  status?: number;
  cause?: unknown;
}

const RETRYABLE_BY_DEFAULT: ReadonlySet<MediaErrorCode> = new Set(['rate_limited', 'timeout', 'upstream']);

export class MediaProviderError extends Error {
  readonly retryable: boolean;
  readonly retryAfterMs?: number;
  readonly vendorMessage?: string;
  readonly vendorCode?: string;
  readonly status?: number;

  constructor(
    readonly code: MediaErrorCode,
    message: string,
    options: MediaProviderErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MediaProviderError';
    this.retryable = options.retryable ?? RETRYABLE_BY_DEFAULT.has(code);
    this.retryAfterMs = options.retryAfterMs;
    this.vendorMessage = options.vendorMessage;
    this.vendorCode = options.vendorCode;
    this.status = options.status;
  }
}

/** Retry-After in seconds or as an HTTP date (RFC 9110 §10.2.3); undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** A failed vendor call as a usage row's `outcome`: its code, `cancelled` when the run was, else `error`. */
export function outcomeOf(err: unknown, signal?: AbortSignal): string {
  if (signal?.aborted) return 'cancelled';
  return err instanceof MediaProviderError ? err.code : 'error';
}

/**
 * Our own refusal, before any call: the provider is over the `rate_limit_rpm`/`rpd` an admin set
 * (counted across instances in scale-out mode). Retryable, so a shot fails over to the next provider;
 * no vendor call was made, so none is recorded as usage.
 */
export class ProviderLimitError extends MediaProviderError {
  constructor(providerName: string, reason: string) {
    super('rate_limited', `${providerName} is ${reason}`, { retryable: true });
    this.name = 'ProviderLimitError';
  }
}
