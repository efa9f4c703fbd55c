import { MediaProviderError } from './errors.ts';

export interface ConnectionCheck {
  ok: boolean;
  /** `ok`, or a MediaErrorCode (`auth`, `rate_limited`, `timeout`, `upstream`, `bad_response`). */
  code: string;
  message: string;
}

/** A test should answer while the admin waits, whatever the provider's own (generous) timeout. */
export const MAX_TEST_TIMEOUT_S = 20;

/** The outcome of a cheap authenticated request, as a connection check. */
export async function checkWith(what: string, call: () => Promise<unknown>): Promise<ConnectionCheck> {
  try {
    await call();
    return { ok: true, code: 'ok', message: `Connected: the key was accepted (${what}).` };
  } catch (e) {
    if (!(e instanceof MediaProviderError)) return { ok: false, code: 'upstream', message: 'The test failed unexpectedly; see the server log.' };
    // Throttled means the key itself works.
    if (e.code === 'rate_limited') return { ok: true, code: 'rate_limited', message: `The key works, but the provider is rate limiting it: ${e.message}` };
    return { ok: false, code: e.code, message: e.message };
  }
}
