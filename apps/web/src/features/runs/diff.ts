/**
 * A small text diff for comparing two versions of a script: LCS over sentences (Chinese scripts have
 * few line breaks, so lines would mark whole paragraphs as changed), then LCS over characters inside
 * each changed stretch, so a one-word edit shows as one word. No dependency: the inputs are a few
 * thousand characters, and the table size is capped.
 */
export interface DiffPart {
  type: 'equal' | 'added' | 'removed';
  text: string;
}

/** Cells of the LCS table we are willing to fill (4M × 4 bytes = 16 MB worst case). */
const MAX_CELLS = 4_000_000;
const MAX_CHAR_CELLS = 250_000;

/** Sentences with their closing punctuation and trailing whitespace, and line breaks on their own. */
export function splitSentences(text: string): string[] {
  return text.match(/[^。！？!?；;\n]*(?:[。！？!?；;]+[”’"')）]*|\n|$)\s*/g)?.filter((s) => s.length > 0) ?? [];
}

function lcsOps<T>(a: T[], b: T[]): DiffPart['type'][] {
  const n = a.length;
  const m = b.length;
  // table[i][j] = LCS length of a[i:] and b[j:]
  const table = new Uint32Array((n + 1) * (m + 1));
  const w = m + 1;
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      table[i * w + j] = a[i] === b[j] ? table[(i + 1) * w + j + 1] + 1 : Math.max(table[(i + 1) * w + j], table[i * w + j + 1]);
    }
  }
  const ops: DiffPart['type'][] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      ops.push('equal');
      i++;
      j++;
    } else if (table[(i + 1) * w + j] >= table[i * w + j + 1]) {
      ops.push('removed');
      i++;
    } else {
      ops.push('added');
      j++;
    }
  }
  while (i++ < n) ops.push('removed');
  while (j++ < m) ops.push('added');
  return ops;
}

function diffUnits(a: string[], b: string[], maxCells: number): DiffPart[] {
  // Common prefix and suffix cost nothing and shrink the table a lot for small edits.
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const parts: DiffPart[] = [];
  if (start > 0) parts.push({ type: 'equal', text: a.slice(0, start).join('') });
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  if ((midA.length + 1) * (midB.length + 1) > maxCells) {
    // Too big to align: one replaced block is still a truthful answer.
    if (midA.length) parts.push({ type: 'removed', text: midA.join('') });
    if (midB.length) parts.push({ type: 'added', text: midB.join('') });
  } else {
    let i = 0;
    let j = 0;
    for (const op of lcsOps(midA, midB)) {
      if (op === 'equal') {
        parts.push({ type: 'equal', text: midA[i++] });
        j++;
      } else if (op === 'removed') parts.push({ type: 'removed', text: midA[i++] });
      else parts.push({ type: 'added', text: midB[j++] });
    }
  }
  if (endA < a.length) parts.push({ type: 'equal', text: a.slice(endA).join('') });
  return merge(parts);
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
  const coarse = diffUnits(splitSentences(before), splitSentences(after), MAX_CELLS);
  // Refine each removed+added stretch character by character.
  const out: DiffPart[] = [];
  for (let k = 0; k < coarse.length; k++) {
    const part = coarse[k];
    const next = coarse[k + 1];
    if (part.type === 'removed' && next?.type === 'added') {
      out.push(...diffUnits(Array.from(part.text), Array.from(next.text), MAX_CHAR_CELLS));
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
