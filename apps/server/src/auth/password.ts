import { hash, verify } from '@node-rs/argon2';

// Argon2id (memory-hard), OWASP's second recommended profile: 19 MiB, 2 passes.
const OPTIONS = { memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export const hashPassword = (password: string) => hash(password, OPTIONS);

export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  try {
    return await verify(stored, password);
  } catch {
    return false;
  }
}

/** Verifying against a fixed hash when the user does not exist keeps timing from telling which emails exist. */
let dummy: Promise<string> | undefined;
export const dummyVerify = async (password: string) => verifyPassword(await (dummy ??= hashPassword('not-a-real-password')), password);
