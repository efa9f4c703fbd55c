import { jsonrepair } from 'jsonrepair';
import { StageOutputError } from './definition.ts';

/**
 * Real models wrap JSON in ```json fences, add a sentence before or after it, leave trailing commas
 * or stop mid-way. We cut to the outermost object and let jsonrepair (a well-kept library) mend
 * the rest; what it cannot mend fails the run with the reason.
 */
function outermostObject(text: string, complete: boolean): string | null {
  const start = text.indexOf('{');
  if (start < 0) return null;
  if (!complete) return text.slice(start);
  const end = text.lastIndexOf('}');
  return end > start ? text.slice(start, end + 1) : text.slice(start);
}

export function parseJsonOutput(text: string): unknown {
  const body = outermostObject(text, true);
  if (body === null) throw new StageOutputError('The model did not answer with JSON (no object found in its answer)');
  try {
    return JSON.parse(jsonrepair(body));
  } catch (err) {
    throw new StageOutputError(`The model's JSON could not be repaired: ${(err as Error).message.split('\n')[0]}`);
  }
}

/**
 * Items of `key` (e.g. `shots`) that are complete in a stream still being written: the text so far is
 * mended as truncated JSON, and every item but the last is known to be finished (the last may still grow).
 */
export function completedItems(textSoFar: string, key: string): unknown[] {
  // Mid-stream the object is open to the end; once closed, prose or a fence may follow it. Each
  // reading gives a prefix of the true list (or nothing), so the longer one is right.
  let best: unknown[] = [];
  for (const complete of [false, true]) {
    const body = outermostObject(textSoFar, complete);
    if (body === null) return [];
    try {
      const value = JSON.parse(jsonrepair(body)) as Record<string, unknown>;
      const items = value && typeof value === 'object' ? value[key] : undefined;
      if (Array.isArray(items) && items.length - 1 > best.length) best = items.slice(0, -1);
    } catch {
      // not mendable this way; later text may make it so, and the final parse decides
    }
  }
  return best;
}
