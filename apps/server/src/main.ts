/** `npm start` (through scripts/start.mjs): the studio — API, event streams and the web app on one port. */
import { serve } from './serve.ts';

await serve('api');
