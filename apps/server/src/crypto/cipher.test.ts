import { describe, expect, it } from 'vitest';
import { Cipher, keyHint } from './cipher.ts';

describe('Cipher', () => {
  it('round-trips a key and never stores it in clear', () => {
    const cipher = new Cipher('x'.repeat(40));
    const sealed = cipher.encrypt('sk-live-1234567890abcdef');
    expect(sealed).not.toContain('sk-live');
    expect(sealed.startsWith('v1:')).toBe(true);
    expect(cipher.decrypt(sealed)).toBe('sk-live-1234567890abcdef');
  });

  it('uses a fresh IV each time and refuses a tampered or foreign ciphertext', () => {
    const cipher = new Cipher('x'.repeat(40));
    const a = cipher.encrypt('secret-key-value');
    expect(cipher.encrypt('secret-key-value')).not.toBe(a);
    const parts = a.split(':');
    parts[3] = Buffer.from('other').toString('base64url');
    expect(() => cipher.decrypt(parts.join(':'))).toThrow();
    expect(() => new Cipher('y'.repeat(40)).decrypt(a)).toThrow();
  });

  it('hints show only a prefix and the last four characters', () => {
    expect(keyHint('sk-abcdefghijklmnop3f9a')).toBe('sk-…3f9a');
    expect(keyHint('short')).toBe('…rt');
    expect(keyHint('')).toBe('');
  });
});
