import type { FastifySchemaCompiler } from 'fastify';
import { validatorCompiler as zodValidatorCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Why a string cannot be stored as PostgreSQL text or jsonb: NUL is refused by both (a 500 deep in
 * a query otherwise), and a lone UTF-16 surrogate is not Unicode (jsonb refuses it; text would
 * silently turn it into U+FFFD).
 */
export function unstorable(text: string): string | null {
  if (text.includes('\0')) return 'must not contain a NUL character';
  if (LONE_SURROGATE.test(text)) return 'must be valid Unicode text (it contains a lone surrogate)';
  return null;
}

/**
 * The first string (value or object key) in a request part that cannot be stored, with its path.
 * Iterative, not recursive: a 1 MiB body of nested arrays must not overflow the stack.
 */
export function findUnstorable(input: unknown): { path: (string | number)[]; message: string } | null {
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value: input, path: [] }];
  while (stack.length) {
    const { value, path } = stack.pop()!;
    if (typeof value === 'string') {
      const message = unstorable(value);
      if (message) return { path, message };
    } else if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], path: [...path, i] });
    } else if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value)) {
      const keys = Object.keys(value);
      for (let i = keys.length - 1; i >= 0; i--) {
        const message = unstorable(keys[i]);
        if (message) return { path: [...path, keys[i]], message: `has a key that ${message.replace(/^must/, 'does not')}` };
        stack.push({ value: (value as Record<string, unknown>)[keys[i]], path: [...path, keys[i]] });
      }
    }
  }
  return null;
}

/** Refuses unstorable text anywhere in a part, naming the field, before the route's own schema runs. */
const StorableInput = z.unknown().superRefine((value, ctx) => {
  const found = findUnstorable(value);
  if (found) ctx.addIssue({ code: 'custom', path: found.path, message: found.message, input: undefined });
});

/**
 * The zod validator of every route's body, querystring and params, behind one check at the edge: no
 * route can pass text to the database that PostgreSQL cannot hold (issue 15, finding 5).
 */
export const validatorCompiler: FastifySchemaCompiler<z.ZodType> = (route) =>
  zodValidatorCompiler({ ...route, schema: StorableInput.pipe(route.schema) });
