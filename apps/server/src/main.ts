import { buildApp } from './app.ts';
import { ConfigError, loadConfig } from './config.ts';
import { DataDirLockedError } from './db/client.ts';
import { InstanceConflictError } from './instances/lease.ts';
import { RedisUnreachableError } from './redis/connection.ts';

try {
  const config = loadConfig();
  let closing = false;
  const shutdown = async (signal: string, code = 0) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    await app.close();
    process.exit(code);
  };
  const app = await buildApp(config, { onLeaseLost: () => void shutdown('lease lost', 1) });
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  // A queue of 511 connections (Node's default) overflows when thousands of followers arrive within a
  // second or two (a deploy, a popular run): they would be refused. The kernel caps it (somaxconn).
  await app.listen({ port: config.port, host: config.host, backlog: 4096 });
  app.services.renderer.warm();
} catch (err) {
  if (err instanceof ConfigError || err instanceof DataDirLockedError || err instanceof InstanceConflictError || err instanceof RedisUnreachableError) {
    console.error(err.message);
    process.exit(1);
  }
  throw err;
}
