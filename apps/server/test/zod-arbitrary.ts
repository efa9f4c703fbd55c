import fc from 'fast-check';
import type { z } from 'zod';

/**
 * fast-check arbitraries derived from zod 4 schemas, for fuzzing the API with its own contracts
 * (zod-fast-check knows only zod 3). It walks `schema._zod.def`: `valid` values follow the schema's
 * types and checks closely enough that most parse; `hostile` values replace any part, at any depth,
 * with what a careless or malicious client sends — NUL, lone surrogates, huge or odd unicode text,
 * `%`, path traversal, wrong types, deep nesting, prototype keys.
 */

type Def = { type: string; [key: string]: any };
const defOf = (schema: unknown): Def => (schema as { _zod: { def: Def } })._zod.def;
const checksOf = (d: Def): Record<string, any>[] => (d.checks ?? []).map((c: { _zod: { def: Record<string, any> } }) => c._zod.def);

export const HOSTILE_STRINGS = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\uD800',
  'x\uDC00y',
  '%',
  '%00',
  '%2e%2e%2f',
  '../../../../etc/passwd',
  '..\\..\\windows\\win.ini',
  '/dev/zero',
  '\u202Eevil',
  '\uFEFF',
  'ｆｕｌｌ　ｗｉｄｔｈ',
  '𠜎𠜱𠝹',
  '🧑‍🚀'.repeat(30),
  'e\u0301'.repeat(40),
  "'; drop table users; --",
  '<script>alert(1)</script>',
  '{{ 7 * 7 }}{% for i in (1..3) %}x{% endfor %}',
  '__proto__',
  'constructor',
  'NaN',
  '-1',
  '1e309',
  '00000000-0000-0000-0000-000000000000',
  'x'.repeat(5_000),
  '漢'.repeat(70_000),
];

const deepNesting = (depth: number) => {
  let v: unknown = 'bottom';
  for (let i = 0; i < depth; i++) v = [v];
  return v;
};

/** Any JSON-ish value a schema does not expect: wrong types, extremes, odd shapes. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) }, // may hold lone surrogates
  {
    weight: 2,
    arbitrary: fc.constantFrom<unknown>(null, true, false, 0, -1, -0, 1.5, 2 ** 31, 2 ** 53 + 2, -(2 ** 63), 1e308, -1e308, [], {}, [null], { '': '' }),
  },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(deepNesting(2_000), JSON.parse('{"__proto__":{"polluted":1},"constructor":{"prototype":{}}}')) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);

export interface ArbitraryOptions {
  /** Mix hostile values in at every level (default: valid values only). */
  hostile?: boolean;
}

/** An arbitrary of values for `schema`; see the file's comment. */
export function arbitraryFor(schema: z.core.$ZodType, opts: ArbitraryOptions = {}, depth = 0): fc.Arbitrary<unknown> {
  const valid = validFor(schema, opts, depth);
  return opts.hostile ? fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: hostileValue }) : valid;
}

function validFor(schema: z.core.$ZodType, opts: ArbitraryOptions, depth: number): fc.Arbitrary<unknown> {
  const d = defOf(schema);
  const inner = (s: unknown) => arbitraryFor(s as z.core.$ZodType, opts, depth + 1);
  switch (d.type) {
    case 'string':
      return stringFor(d, opts);
    case 'number':
      return numberFor(d);
    case 'bigint':
      return fc.bigInt({ min: -(2n ** 40n), max: 2n ** 40n });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'undefined':
    case 'void':
      return fc.constant(undefined);
    case 'date':
      return fc.date({ noInvalidDate: true }).map((t) => t.toISOString());
    case 'literal':
      return fc.constantFrom(...(d.values as unknown[]));
    case 'enum':
      return fc.constantFrom(...Object.values(d.entries as Record<string, unknown>));
    case 'template_literal':
      return fc.stringMatching((schema as unknown as { _zod: { pattern: RegExp } })._zod.pattern);
    case 'object': {
      const shape = d.shape as Record<string, z.core.$ZodType>;
      const model = Object.fromEntries(Object.entries(shape).map(([k, v]) => [k, inner(v)]));
      const requiredKeys = Object.entries(shape).filter(([, v]) => (v as { _zod: { optin?: string } })._zod.optin !== 'optional').map(([k]) => k);
      const record = fc.record(model, { requiredKeys });
      if (!opts.hostile) return record;
      // A client may also send keys the schema never named.
      return fc.tuple(record, fc.dictionary(fc.constantFrom('__proto__', 'constructor', 'id', 'owner_id', 'role', 'x\u0000'), hostileValue, { maxKeys: 2 })).map(([r, extra]) => ({ ...extra, ...r }));
    }
    case 'array': {
      const checks = checksOf(d);
      const min = checks.find((c) => c.check === 'min_length')?.minimum ?? 0;
      const max = checks.find((c) => c.check === 'max_length')?.maximum ?? min + 4;
      return fc.array(inner(d.element), { minLength: min, maxLength: Math.min(max, min + 4) });
    }
    case 'tuple':
      return fc.tuple(...(d.items as unknown[]).map(inner));
    case 'union':
      return fc.oneof(...(d.options as unknown[]).map(inner));
    case 'intersection':
      return fc.tuple(inner(d.left), inner(d.right)).map(([a, b]) => (isObject(a) && isObject(b) ? { ...a, ...b } : b));
    case 'record':
      return fc.dictionary(inner(d.keyType).map(String), inner(d.valueType), { maxKeys: 3 });
    case 'map':
    case 'set':
      return fc.constant([]);
    case 'optional':
      return fc.option(inner(d.innerType), { nil: undefined, freq: 4 });
    case 'nullable':
      return fc.option(inner(d.innerType), { nil: null, freq: 4 });
    case 'default':
    case 'prefault':
    case 'catch':
    case 'readonly':
    case 'nonoptional':
    case 'success':
      return validFor(d.innerType, opts, depth);
    case 'pipe':
      // What the client sends is the pipe's input; a transform after it is the server's business.
      return validFor(d.in, opts, depth);
    case 'lazy':
      return depth > 4 ? fc.constant(null) : validFor(d.getter(), opts, depth + 1);
    case 'any':
    case 'unknown':
    default:
      // transform, custom, file, promise …: nothing to follow, so any JSON value.
      return fc.jsonValue({ maxDepth: 2 });
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function stringFor(d: Def, opts: ArbitraryOptions): fc.Arbitrary<string> {
  const checks = checksOf(d);
  const format = d.format ?? checks.find((c) => c.check === 'string_format')?.format;
  const pattern: RegExp | undefined = d.pattern ?? checks.find((c) => c.check === 'string_format')?.pattern;
  const min = checks.find((c) => c.check === 'min_length')?.minimum ?? checks.find((c) => c.check === 'length_equals')?.length ?? 0;
  const max = checks.find((c) => c.check === 'max_length')?.maximum ?? checks.find((c) => c.check === 'length_equals')?.length ?? min + 40;
  let valid: fc.Arbitrary<string>;
  if (format === 'uuid' || format === 'guid') valid = fc.uuid({ version: 4 });
  else if (format === 'email') valid = fc.emailAddress();
  else if (format === 'url') valid = fc.webUrl();
  else if (format === 'datetime') valid = fc.date({ noInvalidDate: true }).map((t) => t.toISOString());
  else if (pattern) valid = fc.stringMatching(pattern);
  else valid = fc.string({ unit: 'grapheme', minLength: min, maxLength: Math.min(max, min + 40) });
  // Text at the edge of its limits, in more than ASCII.
  const edges = fc.constantFrom('中'.repeat(Math.min(max, 10_000)), 'é'.repeat(Math.min(max, 10_000)), 'x'.repeat(Math.min(max + 1, 10_001)));
  return opts.hostile ? fc.oneof({ weight: 5, arbitrary: valid }, { weight: 1, arbitrary: edges }) : valid;
}

function numberFor(d: Def): fc.Arbitrary<unknown> {
  const checks = checksOf(d);
  const int = checks.some((c) => c.check === 'number_format' && /int/.test(c.format)) || d.format === 'safeint';
  const lower = checks.find((c) => c.check === 'greater_than');
  const upper = checks.find((c) => c.check === 'less_than');
  const step = int ? 1 : 1e-6;
  const min = lower ? lower.value + (lower.inclusive ? 0 : step) : -1e6;
  const max = upper ? upper.value - (upper.inclusive ? 0 : step) : 1e6;
  const arb = int ? fc.integer({ min: Math.ceil(Math.max(min, -(2 ** 31))), max: Math.floor(Math.min(max, 2 ** 31)) }) : fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
  // A coerced number arrives as text (a query string): send it so.
  return d.coerce ? arb.map(String) : arb;
}
