import type { FastifySchemaCompiler } from 'fastify';
import { validatorCompiler as zodValidatorCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Why a string cannot be stored as PostgreSQL text or jsonb: NUL is refused by both (a 500 deep in
 * a query otherwise), and a lone UTF-16 surrogate is not Unicode (jsonb refuses it; text would
 * silently turn it into U+FFFD).
 */
function unstorable(text: string): string | null {
  if (text.includes('\0')) return 'must not contain a NUL character';
  if (LONE_SURROGATE.test(text)) return 'must be valid Unicode text (it contains a lone surrogate)';
  return null;
}

/** A value met on the walk, with the way back to the root (its path is built only for a finding). */
interface Visit {
  value: unknown;
  key: string | number;
  parent: Visit | null;
}

function pathOf(visit: Visit | null): (string | number)[] {
  const path: (string | number)[] = [];
  for (let v = visit; v?.parent; v = v.parent) path.push(v.key);
  return path.reverse();
}

/**
 * The first string (value or object key) in a request part that cannot be stored, with its path.
 * Iterative, not recursive: a 1 MiB body of nested arrays must not overflow the stack. Each value
 * links to its parent instead of carrying a copy of its path: copies cost depth² for deep nesting
 * (half a million levels fit in a body), and that held the event loop for minutes.
 */
function findUnstorable(input: unknown): { path: (string | number)[]; message: string } | null {
  const stack: Visit[] = [{ value: input, key: '', parent: null }];
  while (stack.length) {
    const visit = stack.pop()!;
    const { value } = visit;
    if (typeof value === 'string') {
      const message = unstorable(value);
      if (message) return { path: pathOf(visit), message };
    } else if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], key: i, parent: visit });
    } else if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value)) {
      const keys = Object.keys(value);
      for (let i = keys.length - 1; i >= 0; i--) {
        const message = unstorable(keys[i]);
        if (message) return { path: [...pathOf(visit), keys[i]], message: `has a key that ${message.replace(/^must/, 'does not')}` };
        stack.push({ value: (value as Record<string, unknown>)[keys[i]], key: keys[i], parent: visit });
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
