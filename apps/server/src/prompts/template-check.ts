import type { TemplateVariable, TestTemplateResult } from '@ai-story/contracts';
import { TemplateError, TemplateLimitError, variablesUsed } from './render.ts';

export interface TemplateCheck {
  /** Data variables the template reads, in order of first use. */
  used: string[];
  /** Of those, the ones its stage does not declare. */
  unknown: string[];
  /** Why the template does not parse (syntax, unknown filter, a forbidden tag), or null. */
  error: string | null;
}

/** Parses a template and compares what it reads with what its stage declares; never throws. */
export function checkTemplate(content: string, declared: readonly Pick<TemplateVariable, 'name'>[]): TemplateCheck {
  let used: string[];
  try {
    used = variablesUsed(content);
  } catch (err) {
    return { used: [], unknown: [], error: firstLine(err) };
  }
  const names = new Set(declared.map((v) => v.name));
  return { used, unknown: used.filter((name) => !names.has(name)), error: null };
}

const isEmpty = (value: unknown) =>
  value === undefined || value === null || (typeof value === 'string' && value.trim() === '') || (Array.isArray(value) && value.length === 0);

/** Renders a template (render-pool.ts in the server). */
export type Render = (content: string, variables: Record<string, unknown>) => Promise<string>;

/**
 * Renders a template the way a run would, with the declared samples overridden by `given`, and says
 * what is missing or unknown. A syntax error or a render failure is part of the answer, not a throw;
 * a render stopped by a limit is thrown (TemplateLimitError), as it would stop a run.
 */
export async function tryTemplate(content: string, declared: readonly TemplateVariable[], given: Record<string, unknown>, render: Render): Promise<TestTemplateResult> {
  const check = checkTemplate(content, declared);
  const has = (name: string) => Object.hasOwn(given, name);
  const missing = new Set<string>();
  for (const v of declared) if (!has(v.name) && (v.sample === undefined || v.sample === null)) missing.add(v.name);
  for (const name of check.used) if (has(name) && isEmpty(given[name])) missing.add(name);
  const result = { rendered: '', missing: [...missing], unknown: check.unknown, error: check.error };
  if (check.error) return result;

  // fromEntries defines own properties, so a given `__proto__` key stays a plain (inert) name.
  const data = Object.fromEntries([...declared.map((v) => [v.name, v.sample] as const), ...Object.entries(given)]);
  try {
    return { ...result, rendered: await render(content, data) };
  } catch (err) {
    if (err instanceof TemplateError && !(err instanceof TemplateLimitError)) return { ...result, error: err.message };
    throw err;
  }
}

const firstLine = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0];
