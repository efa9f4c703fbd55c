import { diffArrays, diffChars, type ChangeObject } from 'diff';

/**
 * Compares two versions of a script with jsdiff: first sentence by sentence (Chinese scripts have few
 * line breaks, so lines would mark whole paragraphs as changed, and jsdiff's own sentence splitter
 * knows only `.!?`), then character by character inside each replaced stretch, so a one-word edit
 * shows as one word.
 */
export interface DiffPart {
  type: 'equal' | 'added' | 'removed';
  text: string;
}

/**
 * Edits we are willing to search for (Myers' cost grows with length × edits); beyond them, one
 * replaced block is still a truthful answer.
 */
const MAX_SENTENCE_EDITS = 1_000;
const MAX_CHAR_EDITS = 1_000;

/** Sentences with their closing punctuation and trailing whitespace, and line breaks on their own. */
export function splitSentences(text: string): string[] {
  return text.match(/[^。！？!?；;\n]*(?:[。！？!?；;]+[”’"')）]*|\n|$)\s*/g)?.filter((s) => s.length > 0) ?? [];
}

const typeOf = (c: { added: boolean; removed: boolean }): DiffPart['type'] => (c.added ? 'added' : c.removed ? 'removed' : 'equal');

function replaced(before: string, after: string): DiffPart[] {
  return [
    { type: 'removed', text: before },
    { type: 'added', text: after },
  ];
}

function byChars(before: string, after: string): DiffPart[] {
  const changes = diffChars(before, after, { maxEditLength: MAX_CHAR_EDITS });
  return changes ? changes.map((c) => ({ type: typeOf(c), text: c.value })) : replaced(before, after);
}

function merge(parts: DiffPart[]): DiffPart[] {
  const out: DiffPart[] = [];
  for (const p of parts) {
    if (!p.text) continue;
    const last = out.at(-1);
    if (last && last.type === p.type) last.text += p.text;
    else out.push({ ...p });
  }
  return out;
}

export function diffText(before: string, after: string): DiffPart[] {
  const changes: ChangeObject<string[]>[] | undefined = diffArrays(splitSentences(before), splitSentences(after), { maxEditLength: MAX_SENTENCE_EDITS });
  if (!changes) return merge(replaced(before, after));
  const coarse = merge(changes.map((c) => ({ type: typeOf(c), text: c.value.join('') })));
  // Refine each removed+added stretch character by character.
  const out: DiffPart[] = [];
  for (let k = 0; k < coarse.length; k++) {
    const part = coarse[k];
    const next = coarse[k + 1];
    if (part.type === 'removed' && next?.type === 'added') {
      out.push(...byChars(part.text, next.text));
      k++;
    } else {
      out.push(part);
    }
  }
  return merge(out);
}

export interface DiffStats {
  added: number;
  removed: number;
}

export function diffStats(parts: DiffPart[]): DiffStats {
  let added = 0;
  let removed = 0;
  for (const p of parts) {
    if (p.type === 'added') added += Array.from(p.text).length;
    if (p.type === 'removed') removed += Array.from(p.text).length;
  }
  return { added, removed };
}
