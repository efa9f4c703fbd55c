/**
 * Text a run keeps is always well-formed Unicode, whatever a model sends: a vendor may split an emoji's
 * surrogate pair across two deltas (or escape half of one in JSON, `"\ud83d"`), and a proxy that cut
 * UTF-8 bytes leaves U+FFFD behind. Neither may reach the database or a client.
 */
const BROKEN = /\uFFFD|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** The text without replacement characters or lone surrogates. */
export const cleanText = (text: string) => text.replace(BROKEN, '');

/**
 * A delta as it may be stored: a high surrogate at its very end is held back (`carry`) until the next
 * delta brings its pair; everything broken is dropped.
 */
export function cleanDelta(carry: string, delta: string): { text: string; carry: string } {
  const joined = carry + delta;
  const last = joined.charCodeAt(joined.length - 1);
  const held = last >= 0xd800 && last <= 0xdbff ? joined.slice(-1) : '';
  return { text: cleanText(held ? joined.slice(0, -1) : joined), carry: held };
}

/** Every string inside a parsed value, cleaned (a structured output's items). */
export function cleanDeep<T>(value: T): T {
  if (typeof value === 'string') return cleanText(value) as T;
  if (Array.isArray(value)) return value.map(cleanDeep) as T;
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, cleanDeep(v)])) as T;
  return value;
}
