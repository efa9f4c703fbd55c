import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * A package loaded the first time it is used instead of when the studio starts. For what only some
 * studios need — sharp's libvips for pictures, bullmq and ioredis for scale-out, fontkit for
 * subtitles — that is about 25 MB of memory a studio that only writes never carries.
 */
export function onFirstUse<T>(name: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(name) as T);
}
