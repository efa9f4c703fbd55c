/**
 * Vendor error text shown to an admin must not give back the key it was called with. Vendors echo
 * keys in odd shapes — cut to a prefix or suffix, split over two fields, url-encoded, inside a
 * base64 `Basic` header — so a run of FRAGMENT characters or more that also occurs in the key (or in
 * one of its encodings) is redacted, not only the whole key (issue 15, finding 6).
 */
const FRAGMENT = 6;
/** Longer vendor text is cut before the search: an admin needs the gist, not a page. */
const SCANNED = 4_000;
export const REDACTED = '[redacted]';

/**
 * ASCII letters to lower case, nothing else: String#toLowerCase may lengthen a string ('İ' becomes two
 * code units), which would shift every position after it against the text that is marked and cut.
 */
const foldCase = (s: string) => s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));

/** The shapes a secret may come back in. base64 at three byte offsets: a key inside a longer encoded string is aligned to one of them. */
function encodings(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const forms = [secret, encodeURIComponent(secret), bytes.toString('hex')];
  for (let shift = 0; shift < 3; shift++) {
    const part = bytes.subarray(shift);
    forms.push(part.toString('base64'), part.toString('base64url'));
  }
  return [...new Set(forms.map(foldCase))];
}

/** `text` with every run of FRAGMENT+ characters shared with a secret (in any of its shapes) replaced. */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  const scanned = text.length > SCANNED ? text.slice(0, SCANNED) : text;
  const forms = secrets.filter((s) => s.length >= FRAGMENT).flatMap(encodings);
  if (!forms.length) return scanned;
  const lower = foldCase(scanned);
  const hidden = new Uint8Array(scanned.length);
  // Longest common substring ending at each pair of positions (one row at a time): a match of
  // FRAGMENT or more marks its whole length.
  for (const form of forms) {
    let prev = new Uint16Array(form.length + 1);
    for (let i = 1; i <= lower.length; i++) {
      const row = new Uint16Array(form.length + 1);
      for (let j = 1; j <= form.length; j++) {
        if (lower[i - 1] !== form[j - 1]) continue;
        const run = (row[j] = prev[j - 1] + 1);
        // Along a diagonal the run grows by one: mark its start once, then one more character each step.
        if (run === FRAGMENT) hidden.fill(1, i - run, i);
        else if (run > FRAGMENT) hidden[i - 1] = 1;
      }
      prev = row;
    }
  }
  let out = '';
  for (let i = 0; i < scanned.length; i++) {
    if (!hidden[i]) out += scanned[i];
    else if (i === 0 || !hidden[i - 1]) out += REDACTED;
  }
  return out;
}

/** Vendor words as an admin sees them: redacted, on one line, and short. */
export function vendorSnippet(text: string, secrets: readonly string[], max = 300): string {
  const s = redactSecrets(text, secrets).replace(/\s+/g, ' ').trim();
  return s.length > max ? s.slice(0, max) + '…' : s;
}
