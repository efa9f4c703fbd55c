import { describe, expect, it } from 'vitest';
import { REDACTED, redactSecrets, vendorSnippet } from './redact.ts';

const KEY = 'sk-proj-Zq8vN3xK7mP2rT9wL4hB';
const SECRET = 'kling-secret-9f8e7d6c5b4a';

describe('redactSecrets', () => {
  it.each([
    ['the whole key', `Incorrect API key provided: ${KEY}.`],
    ['a prefix of it', `Incorrect API key provided: ${KEY.slice(0, 14)}****************.`],
    ['a suffix of it', `key ending in ...${KEY.slice(-8)} is invalid`],
    ['the key split in two', `key "${KEY.slice(0, 13)}" + "${KEY.slice(13)}" rejected`],
    ['the key split over lines', `key ${KEY.slice(0, 12)}\n${KEY.slice(12)} rejected`],
    ['the key url-encoded', `GET /v1/models?key=${encodeURIComponent(KEY + '/=')}`],
    ['the key in a Basic header', `Authorization: Basic ${Buffer.from(`user:${KEY}`).toString('base64')}`],
    ['the key in base64url at an odd offset', `token=${Buffer.from(`ab${KEY}`).toString('base64url')}`],
    ['the key hex-encoded', `bytes ${Buffer.from(KEY).toString('hex')}`],
    ['the key in another case', `KEY ${KEY.toUpperCase()} unknown`],
    ['the key after letters that lengthen when lower-cased', `${'İ'.repeat(12)} ${KEY} unknown`],
  ])('hides %s', (_what, text) => {
    const out = redactSecrets(text, [KEY]);
    expect(out).toContain(REDACTED);
    // No six characters in a row of the key (or of its encodings) survive.
    for (let i = 0; i + 6 <= KEY.length; i++) expect(out.toLowerCase()).not.toContain(KEY.slice(i, i + 6).toLowerCase());
    const b64 = Buffer.from(`user:${KEY}`).toString('base64');
    if (text.includes(b64)) expect(out).not.toContain(b64.slice(8, 20));
  });

  it('hides every secret given (key and secret of a two-part credential)', () => {
    const out = redactSecrets(`ak=${KEY} sk=${SECRET}`, [KEY, SECRET]);
    expect(out).toBe(`ak=${REDACTED} sk=${REDACTED}`);
  });

  it('leaves text that shares nothing with the key as it was', () => {
    const text = 'The model "gpt-4o-mini" does not exist or you do not have access to it.';
    expect(redactSecrets(text, [KEY])).toBe(text);
    expect(redactSecrets(text, [])).toBe(text);
  });

  it('keeps a vendor snippet on one line and short', () => {
    const out = vendorSnippet(`line one\n\n${'x'.repeat(1000)} ${KEY}`, [KEY], 100);
    expect(out).not.toContain('\n');
    expect(out.length).toBeLessThanOrEqual(101);
    expect(vendorSnippet(`bad key ${KEY}`, [KEY])).toBe(`bad key ${REDACTED}`);
  });
});
