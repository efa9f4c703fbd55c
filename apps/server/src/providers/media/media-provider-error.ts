/**
 * What a media vendor call can end in, as a code the run engine acts on: retry (with the vendor's
 * Retry-After), cool the provider down, fail over, or tell the user in the vendor's own words why a
 * prompt was refused.
 */
export type MediaErrorCode = 'auth' | 'rate_limited' | 'moderation' | 'timeout' | 'bad_response' | 'upstream' | 'cancelled';

export class MediaProviderError extends Error {
  readonly code: MediaErrorCode;
  readonly retryable: boolean;
  readonly retryAfterMs?: number;
  /** The vendor's own words (moderation refusals, failed tasks), shown to the user as they are. */
  readonly vendorMessage?: string;
  readonly status?: number;
  /** The vendor's error code (`content_policy_violation`, `DataInspectionFailed` …). */
  readonly vendorCode?: string;

  constructor(
    code: MediaErrorCode,
    message: string,
    details: { retryable?: boolean; retryAfterMs?: number; vendorMessage?: string; status?: number; vendorCode?: string } = {},
  ) {
    super(message);
    this.name = 'MediaProviderError';
    this.code = code;
    this.retryable = details.retryable ?? (code === 'rate_limited' || code === 'upstream' || code === 'timeout');
    if (details.retryAfterMs !== undefined) this.retryAfterMs = details.retryAfterMs;
    if (details.vendorMessage !== undefined) this.vendorMessage = details.vendorMessage;
    if (details.status !== undefined) this.status = details.status;
    if (details.vendorCode !== undefined) this.vendorCode = details.vendorCode;
  }
}
