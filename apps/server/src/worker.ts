/**
 * `npm run worker`: executes the runs API instances queue (RUNS_IN=workers, with REDIS_URL and
 * DATABASE_URL). It answers /healthz (and /metrics with METRICS_TOKEN) on PORT, nothing else.
 */
import { serve } from './serve.ts';

await serve('worker');
