import { acceptOnMoreHandles } from './accept-handles.ts';
import { buildApp } from './app.ts';
import { ConfigError, loadConfig } from './config.ts';
import { DataDirLockedError } from './db/client.ts';
import { InstanceConflictError } from './instances/lease.ts';
import { RedisUnreachableError } from './redis/connection.ts';

/**
 * A queue of 511 connections (Node's default) overflows when thousands of followers arrive within a
 * second or two (a deploy, a popular run): they would be refused. The kernel caps it (somaxconn).
 */
const BACKLOG = 4096;

/**
 * Handles that accept beside the server's own (accept-handles.ts). In one run of the relay bench on two
 * cores, eight in all against one: TTFT p99 at 400 streams 1.6 s against 4.4 s on PostgreSQL, at 1,600
 * 14.5 against 31.2 s on PostgreSQL and 18.3 against 26.1 s on PGlite. Eight against four: 16.4 against
 * 19.3 s at 1,600 on PostgreSQL, the rest within the noise. A handle with nothing to accept costs one
 * refused accept() when a connection comes.
 */
const MORE_ACCEPTING_HANDLES = 7;

/**
 * Runs this process as a studio (`api`, main.ts) or a run worker (`worker`, worker.ts): listens on
 * PORT, and on SIGTERM/SIGINT stops its runs (saved as `interrupted`) before it exits. A start-up
 * problem the operator can fix is one line on stderr and exit code 1.
 */
export async function serve(role: 'api' | 'worker') {
  try {
    const config = loadConfig();
    if (role === 'worker' && config.runsIn !== 'workers') {
      throw new ConfigError('Invalid RUNS_IN: a worker needs RUNS_IN=workers (with REDIS_URL and DATABASE_URL), as the API instances it serves have');
    }
    let closing = false;
    let closeMoreHandles = () => {};
    const shutdown = async (signal: string, code = 0) => {
      if (closing) return;
      closing = true;
      app.log.info({ signal, role }, 'shutting down');
      closeMoreHandles();
      await app.close();
      process.exit(code);
    };
    const app = await buildApp(config, { role, onLeaseLost: () => void shutdown('lease lost', 1) });
    process.on('SIGTERM', () => void shutdown('SIGTERM'));
    process.on('SIGINT', () => void shutdown('SIGINT'));
    await app.listen({ port: config.port, host: config.host, backlog: BACKLOG });
    if (role === 'api') {
      app.services.renderer.warm();
      // A busy studio accepts one connection per handle per pass of its event loop (accept-handles.ts).
      await acceptOnMoreHandles(app.server, MORE_ACCEPTING_HANDLES, BACKLOG).then(
        (close) => (closing ? close() : (closeMoreHandles = close)),
        (err) => app.log.warn({ err }, 'accepting on one handle only'),
      );
    } else app.log.info({ concurrency: config.workerConcurrency }, 'worker taking runs');
  } catch (err) {
    if (err instanceof ConfigError || err instanceof DataDirLockedError || err instanceof InstanceConflictError || err instanceof RedisUnreachableError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
}
