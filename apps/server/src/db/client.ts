import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Logger as DrizzleLogger } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import * as schema from './schema.ts';

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  kind: 'pglite' | 'postgres';
  /** Statements since start, and how many changed data: lets a test prove no code path writes per token. */
  stats: DbStats;
  /** Follows every statement sent (its SQL text): a test counts what one operation costs. */
  onStatement(listener: (sql: string) => void): () => void;
  close(): Promise<void>;
}

const MIGRATIONS = path.join(import.meta.dirname, 'migrations');
const WRITE = /^\s*(insert|update|delete)\b/i;

export interface DbStats {
  statements: number;
  writes: number;
}

/** Counts what Drizzle sends (a transaction's begin and commit are not statements Drizzle logs). */
function countingLogger() {
  const stats: DbStats = { statements: 0, writes: 0 };
  const listeners = new Set<(sql: string) => void>();
  const logger: DrizzleLogger = {
    logQuery(query) {
      stats.statements++;
      if (WRITE.test(query)) stats.writes++;
      for (const l of listeners) l(query);
    },
  };
  const onStatement = (listener: (sql: string) => void) => {
    listeners.add(listener);
    return () => void listeners.delete(listener);
  };
  return { stats, logger, onStatement };
}

export async function openDatabase(opts: { dataDir: string; databaseUrl?: string }): Promise<Database> {
  return opts.databaseUrl ? openPostgres(opts.databaseUrl) : openPglite(opts.dataDir);
}

async function openPostgres(url: string): Promise<Database> {
  const { default: postgres } = await import('postgres');
  const { drizzle } = await import('drizzle-orm/postgres-js');
  const { migrate } = await import('drizzle-orm/postgres-js/migrator');
  const { stats, logger, onStatement } = countingLogger();
  const sql = postgres(url, { max: 10, onnotice: () => {} });
  const db = drizzle(sql, { schema, logger });
  await migrate(db, { migrationsFolder: MIGRATIONS });
  return { db: db as unknown as Db, kind: 'postgres', stats, onStatement, close: () => sql.end({ timeout: 5 }) };
}

/**
 * PGlite holds its folder alone: two processes on one folder lose data silently (DESIGN §2),
 * so a lock file guards it, and a folder whose first start never finished is set aside.
 */
async function openPglite(dataDir: string): Promise<Database> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { drizzle } = await import('drizzle-orm/pglite');
  const { migrate } = await import('drizzle-orm/pglite/migrator');
  mkdirSync(dataDir, { recursive: true });
  const releaseLock = takeLock(path.join(dataDir, 'studio.lock'));
  try {
    const pgdata = path.join(dataDir, 'pgdata');
    const ready = path.join(dataDir, 'pgdata.ready');
    if (existsSync(pgdata) && !existsSync(ready)) {
      const aside = `${pgdata}.incomplete-${Date.now()}`;
      renameSync(pgdata, aside);
      process.emitWarning(`The embedded database in ${pgdata} was never fully initialised; moved it to ${aside} and starting fresh.`);
    }
    const client = await PGlite.create(pgdata);
    const { stats, logger, onStatement } = countingLogger();
    const db = drizzle(client, { schema, logger });
    await migrate(db, { migrationsFolder: MIGRATIONS });
    if (!existsSync(ready)) writeFileSync(ready, new Date().toISOString() + '\n');
    return {
      db: db as unknown as Db,
      kind: 'pglite',
      stats,
      onStatement,
      close: async () => {
        await client.close();
        releaseLock();
      },
    };
  } catch (err) {
    releaseLock();
    throw err;
  }
}

export class DataDirLockedError extends Error {}

function takeLock(file: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (pid && pid !== process.pid && isAlive(pid)) {
        throw new DataDirLockedError(
          `Another AI Story process (pid ${pid}) is using ${path.dirname(file)}. Stop it, or set DATA_DIR to another folder.`,
        );
      }
      rmSync(file, { force: true }); // stale lock from a crashed process
    }
  }
  throw new DataDirLockedError(`Could not lock ${file}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
