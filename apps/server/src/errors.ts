import type { ErrorCode } from '@ai-story/contracts';

/** Typed errors thrown by services; one handler (app.ts) turns them into the error envelope. */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export const notFound = (what = 'Resource') => new AppError(404, 'not_found', `${what} not found`);
export const forbidden = (message = 'You do not have permission to do this') => new AppError(403, 'forbidden', message);
export const unauthenticated = (message = 'Sign in first') => new AppError(401, 'unauthenticated', message);
export const conflict = (message: string, details?: Record<string, unknown>) => new AppError(409, 'conflict', message, details);
export const invalid = (field: string, message: string) =>
  new AppError(400, 'validation_error', `${field}: ${message}`, { fields: { [field]: message } });
/** Nothing can serve the request now (503): `retryAfterS` becomes the `Retry-After` header. */
export const unavailable = (message: string, retryAfterS: number) =>
  new AppError(503, 'unavailable', message, { retry_after_s: Math.max(1, Math.ceil(retryAfterS)) });
