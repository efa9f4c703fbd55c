export type MediaErrorCode = 'auth' | 'rate_limited' | 'moderation' | 'timeout' | 'bad_response' | 'upstream' | 'cancelled';

/**
 * What every media adapter (image, speech, image-to-video) throws: a code the stage can act on
 * (retry, fail over, tell the user), whether trying again may help, and the vendor's own words.
 */
export class MediaProviderError extends Error {
  readonly code: MediaErrorCode;
  readonly retryable: boolean;
  readonly retryAfterMs?: number;
  readonly vendorMessage?: string;

  constructor(
    code: MediaErrorCode,
    message: string,
    options: { retryable?: boolean; retryAfterMs?: number; vendorMessage?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MediaProviderError';
    this.code = code;
    this.retryable = options.retryable ?? (code === 'rate_limited' || code === 'upstream' || code === 'timeout');
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
    if (options.vendorMessage !== undefined) this.vendorMessage = options.vendorMessage;
  }
}
