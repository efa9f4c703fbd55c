/**
 * Splits a shot's narration into sentences, one synthesis request each.
 *
 * The contract (tested exactly):
 * - a sentence ends after a run of terminators — 。！？；… and ! ? ; — plus any closing quotes or
 *   brackets that follow (”’」』）》) and "), or at a line break;
 * - "." ends a sentence only when followed (after any closing quotes) by whitespace or the end of
 *   the text, so 3.14 and example.com stay whole;
 * - each sentence is trimmed and never empty; whitespace at a boundary belongs to no sentence;
 * - nothing else is lost: walking the trimmed text, each sentence starts where the previous one
 *   ended plus only whitespace, and the last one ends at the end. Equivalently,
 *   `text.trim()` equals the sentences joined with the whitespace runs that separated them.
 */
const TERMINATORS = new Set(['。', '！', '？', '；', '…', '!', '?', ';', '．']);
const CLOSERS = new Set(['”', '’', '」', '』', '）', '》', '〉', '】', ')', '"', "'"]);

export function splitSentences(text: string): string[] {
  const chars = Array.from(text);
  const sentences: string[] = [];
  let current = '';
  const flush = () => {
    const s = current.trim();
    if (s) sentences.push(s);
    current = '';
  };

  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (c === '\n' || c === '\r') {
      flush();
      continue;
    }
    current += c;
    const ends = TERMINATORS.has(c) || (c === '.' && periodEnds(chars, i + 1));
    if (!ends) continue;
    // Keep a run of terminators ("！？", "……", "?!") and the closing quotes after it together.
    while (i + 1 < chars.length && (TERMINATORS.has(chars[i + 1]) || chars[i + 1] === '.' || CLOSERS.has(chars[i + 1]))) {
      current += chars[++i];
    }
    flush();
  }
  flush();
  return sentences;
}

function periodEnds(chars: string[], next: number): boolean {
  while (next < chars.length && CLOSERS.has(chars[next])) next++;
  return next === chars.length || /\s/.test(chars[next]);
}
