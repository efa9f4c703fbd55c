/**
 * `npm run worker`: a process that executes the runs API instances queue (RUNS_IN=workers, with
 * REDIS_URL and DATABASE_URL). It answers /healthz (and /metrics with METRICS_TOKEN) on PORT, nothing
 * else; SIGTERM stops its runs as `interrupted`, saved, before it exits.
 */
import { buildApp } from './app.ts';
import { ConfigError, loadConfig } from './config.ts';
import { RedisUnreachableError } from './redis/connection.ts';

try {
  const config = loadConfig();
  if (config.runsIn !== 'workers') throw new ConfigError('Invalid RUNS_IN: a worker needs RUNS_IN=workers (with REDIS_URL and DATABASE_URL), as the API instances it serves have');
  let closing = false;
  const shutdown = async (signal: string, code = 0) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'worker shutting down');
    await app.close();
    process.exit(code);
  };
  const app = await buildApp(config, { role: 'worker', onLeaseLost: () => void shutdown('lease lost', 1) });
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  await app.listen({ port: config.port, host: config.host });
  app.log.info({ concurrency: config.workerConcurrency }, 'worker taking runs');
} catch (err) {
  if (err instanceof ConfigError || err instanceof RedisUnreachableError) {
    console.error(err.message);
    process.exit(1);
  }
  throw err;
}
