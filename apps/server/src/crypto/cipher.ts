import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';

/**
 * The one place that encrypts and decrypts secrets (provider API keys).
 * Format `v1:<iv>:<tag>:<ciphertext>` (base64url), AES-256-GCM under a key derived from APP_SECRET,
 * so a future key rotation can add `v2` without guessing.
 */
export class Cipher {
  private readonly key: Buffer;

  constructor(appSecret: string) {
    this.key = Buffer.from(hkdfSync('sha256', appSecret, 'ai-story', 'provider-api-keys', 32));
  }

  encrypt(plain: string): string {
    if (!plain) return '';
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return ['v1', iv, cipher.getAuthTag(), data].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join(':');
  }

  decrypt(sealed: string): string {
    if (!sealed) return '';
    const [version, iv, tag, data] = sealed.split(':');
    if (version !== 'v1' || !iv || !tag || data === undefined) throw new Error('Unknown secret format');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8');
  }
}

/** A hint a person can recognise a key by, never enough to use it: `sk-…3f9a`. */
export function keyHint(key: string): string {
  if (!key) return '';
  if (key.length < 12) return '…' + key.slice(-2);
  const prefix = key.match(/^[a-z]{2,5}-/i)?.[0] ?? '';
  return `${prefix}…${key.slice(-4)}`;
}

export const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');
export const randomToken = (bytes = 32) => randomBytes(bytes).toString('base64url');
