import { ErrorBody, type ErrorCode } from '@ai-story/contracts';

/**
 * An API failure with the server's error code, so callers branch on `code` (never on message text)
 * and forms can put `fields` messages next to the inputs they belong to.
 */
export class ApiError extends Error {
  readonly status: number;
  readonly code: ErrorCode | 'network_error';
  readonly details: Record<string, unknown>;
  /** Field path -> message, from `details.fields` of a validation error. */
  readonly fields: Record<string, string>;

  constructor(status: number, code: ApiError['code'], message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    const fields = details.fields;
    this.fields =
      fields && typeof fields === 'object'
        ? Object.fromEntries(Object.entries(fields as Record<string, unknown>).map(([k, v]) => [k, String(v)]))
        : {};
  }
}

export const isApiError = (err: unknown): err is ApiError => err instanceof ApiError;

type Query = Record<string, string | number | boolean | null | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  signal?: AbortSignal;
}

/** Called on any 401 from a request made while signed in (session expired or revoked elsewhere). */
let onUnauthenticated: (() => void) | null = null;
export function setUnauthenticatedHandler(handler: () => void) {
  onUnauthenticated = handler;
}

export function apiUrl(path: string, query?: Query): string {
  const url = path.startsWith('/api/') ? path : `/api/v1${path}`;
  if (!query) return url;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  const qs = params.toString();
  return qs ? `${url}?${qs}` : url;
}

async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(apiUrl(path, opts.query), {
      method,
      credentials: 'include',
      headers: {
        Accept: 'application/json',
        ...(opts.body !== undefined && { 'Content-Type': 'application/json' }),
      },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'network_error', (err as Error).message || 'Network error');
  }
  if (res.status === 204) return undefined as T;
  const payload: unknown = await res.json().catch(() => null);
  if (res.ok) return payload as T;

  const parsed = ErrorBody.safeParse(payload);
  const error = parsed.success
    ? new ApiError(res.status, parsed.data.error.code, parsed.data.error.message, parsed.data.error.details)
    : new ApiError(res.status, res.status === 401 ? 'unauthenticated' : 'internal_error', res.statusText || `HTTP ${res.status}`);
  if (res.status === 401 && !path.startsWith('/auth/')) onUnauthenticated?.();
  throw error;
}

export const http = {
  get: <T>(path: string, query?: Query, signal?: AbortSignal) => request<T>('GET', path, { query, signal }),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, { body: body ?? {} }),
  patch: <T>(path: string, body: unknown) => request<T>('PATCH', path, { body }),
  put: <T>(path: string, body: unknown) => request<T>('PUT', path, { body }),
  delete: (path: string) => request<void>('DELETE', path),
};

/** A page of a list endpoint (DESIGN §5: lists answer `{ count, results }`). */
export interface Page<T> {
  count: number;
  results: T[];
}
