import { DrizzleQueryError } from 'drizzle-orm';
import type { FastifyServerOptions } from 'fastify';
import { stdSerializers } from 'pino';

/** Paths that may carry a secret are redacted wherever they appear in a log line. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.api_key',
  '*.apiKey',
  '*.password',
  '*.authorization',
  '*.cookie',
  'api_key',
  'apiKey',
  'password',
];

/**
 * Fields of database driver errors that carry a query's bound values or a row's values: a failed
 * insert of a user or a provider would otherwise log a password hash or a sealed API key (issue 15,
 * finding 5). Drizzle: `params`; PGlite: `params`, `queryOptions`; postgres.js: `parameters`, `args`
 * (with `debug`); PostgreSQL's own `detail` ("Failing row contains (…)", "Key (email)=(…)") and
 * `where` (the PL/pgSQL context, with values). `query` is the SQL text, already in the message.
 */
const BOUND_VALUE_FIELDS = new Set(['params', 'parameters', 'args', 'queryOptions', 'detail', 'where', 'query']);

/**
 * A copy of an error and its causes without the values a query was run with. Drizzle's message is
 * `Failed query: <sql>\nparams: <values>`; the SQL (with $1 placeholders) stays, the values go.
 */
function withoutBoundValues(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error) || depth > 8) return err;
  const message = err instanceof DrizzleQueryError ? `Failed query: ${err.query}` : err.message;
  const copy: Record<string, unknown> = Object.create(Object.getPrototypeOf(err));
  for (const [key, value] of Object.entries(err)) if (!BOUND_VALUE_FIELDS.has(key)) copy[key] = value;
  Object.defineProperty(copy, 'message', { value: message, enumerable: false });
  Object.defineProperty(copy, 'stack', { value: err.stack?.replace(err.message, () => message), enumerable: false });
  if (err.cause !== undefined) Object.defineProperty(copy, 'cause', { value: withoutBoundValues(err.cause, depth + 1), enumerable: false });
  return copy;
}

export function loggerOptions(level: string, stream?: NodeJS.WritableStream): FastifyServerOptions['logger'] {
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { err: (err: Error) => stdSerializers.err(withoutBoundValues(err) as Error) },
    ...(stream && { stream }),
  };
}
