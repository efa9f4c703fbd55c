import type { Sharp, SharpConstructor, SharpInput, SharpOptions } from 'sharp';
import { onFirstUse } from '../on-first-use.ts';

const sharpModule = onFirstUse<SharpConstructor>('sharp');

/** sharp's constructor, as `import sharp from 'sharp'` gives it, but loaded with the first picture (libvips is large). */
export const sharp = (input?: SharpInput, options?: SharpOptions): Sharp => sharpModule()(input, options);
