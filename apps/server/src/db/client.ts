import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import type { Logger as DrizzleLogger } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import postgres, { type Options, type Sql as PostgresSql } from 'postgres';
import { createPglite, PgliteThread } from './pglite-thread.ts';
import * as schema from './schema.ts';

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  kind: 'pglite' | 'postgres';
  /** Connections of `db`'s pool (PGlite: one session however many there are). */
  poolSize: number;
  /** Statements since start, and how many changed data: lets a test prove no code path writes per token. */
  stats: DbStats;
  /** Follows every statement sent (its SQL text): a test counts what one operation costs. */
  onStatement(listener: (sql: string) => void): () => void;
  /**
   * Where the instance lease is kept (instances/lease.ts): on PostgreSQL a connection of its own, so a
   * heartbeat never waits behind a pool busy with runs; on PGlite the one database.
   */
  leaseDb: Db;
  /**
   * Reads a person waits on that runs never make (the project list, a project's page and what its
   * panels show, every request's credential, every check that a user may view a project), where a
   * burst of run starts and endings queued on the pool is never in front of them (at 400 streams a
   * list waited up to half a second there): on PostgreSQL two connections of their
   * own; on PGlite a connection whose statements take the one session first (pglite-worker.ts), so a
   * transaction must never wait for one of them.
   */
  readDb: Db;
  close(): Promise<void>;
}

const MIGRATIONS = path.join(import.meta.dirname, 'migrations');
/**
 * Connections of the main PostgreSQL pool, what runs and most requests share, unless DATABASE_POOL_SIZE
 * says otherwise: twice the cores, at least 4 (PostgreSQL's own rule of thumb for a server on these
 * cores). postgres.js pipelines statements on a connection, so few connections lose no throughput,
 * while each one is a server process that, under load, takes its share of the cores from the studio's
 * event loop: at 400 streams on 2 cores, 4 connections against 10 halved the token delay's p99.
 */
export const defaultPoolSize = () => Math.max(4, 2 * availableParallelism());
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

export interface OpenOptions {
  dataDir: string;
  databaseUrl?: string;
  /** PostgreSQL mode: connections of the main pool (defaultPoolSize when unset). */
  poolSize?: number;
  /** Another migration history than the studio's own (tests build an older version's schema with a part of it). */
  migrationsFolder?: string;
}

export async function openDatabase(opts: OpenOptions): Promise<Database> {
  const migrations = opts.migrationsFolder ?? MIGRATIONS;
  return opts.databaseUrl ? openPostgres(opts.databaseUrl, migrations, opts.poolSize ?? defaultPoolSize()) : openPglite(opts.dataDir, migrations);
}

async function openPostgres(url: string, migrations: string, poolSize: number): Promise<Database> {
  const { drizzle } = await import('drizzle-orm/postgres-js');
  const { migrate } = await import('drizzle-orm/postgres-js/migrator');
  const { stats, logger, onStatement } = countingLogger();
  const sql = postgresClient(url, { max: poolSize });
  const db = drizzle(sql, { schema, logger });
  await migrate(db, { migrationsFolder: migrations });
  const leaseSql = postgresClient(url, { max: 1 });
  const readSql = postgresClient(url, { max: 2 });
  return {
    db: db as unknown as Db,
    kind: 'postgres',
    poolSize,
    stats,
    onStatement,
    leaseDb: drizzle(leaseSql, { schema }) as unknown as Db,
    readDb: drizzle(readSql, { schema, logger }) as unknown as Db,
    close: async () => {
      await Promise.all([sql.end({ timeout: 5 }), leaseSql.end({ timeout: 5 }), readSql.end({ timeout: 5 })]);
    },
  };
}

/** The studio's postgres.js client: statements prepared, transactions on a connection of their own (below). */
export function postgresClient(url: string | undefined, options: Options<{}> = {}): PostgresSql {
  const { url: target, host } = socketHost(url);
  const waiting = new Set<() => void>();
  const onclose = () => waiting.forEach((told) => told());
  const all = { onnotice: () => {}, ...(host && { host }), ...options, onclose };
  const sql = target === undefined ? postgres(all) : postgres(target, all);
  return preparing(sql, () => reserve(sql, waiting));
}

/**
 * libpq's way to name a Unix socket, `postgres://user@localhost/db?host=/var/run/postgresql`: a
 * database on the same machine is cheaper to reach through its socket than through loopback TCP.
 * postgres.js would send an unknown URL parameter to the server as a setting, so it is taken out here.
 */
function socketHost(url: string | undefined): { url: string | undefined; host?: string } {
  if (!url) return { url };
  const parsed = new URL(url);
  const host = parsed.searchParams.get('host');
  if (!host?.startsWith('/')) return { url };
  parsed.searchParams.delete('host');
  return { url: parsed.toString(), host };
}

/** Statements with more parameters than this vary in shape (IN lists, many rows): not worth a cached plan. */
const MAX_PREPARED_PARAMETERS = 32;

/**
 * Drizzle's postgres.js adapter sends every statement unprepared (drizzle-orm#6096), and postgres.js
 * then asks the server to describe each one before binding it: two round trips, and a parse, per
 * statement. This client prepares statements of a fixed shape once per connection instead (one round
 * trip each after the first), in transactions too.
 */
function preparing<T extends PostgresSql>(sql: T, reserveConnection?: () => Promise<postgres.ReservedSql>): T {
  return new Proxy(sql, {
    get(target, prop, receiver) {
      if (prop === 'unsafe') {
        return (query: string, args: unknown[] = [], options: object = {}) =>
          target.unsafe(query, args as never, { ...options, prepare: args.length > 0 && args.length <= MAX_PREPARED_PARAMETERS });
      }
      if (prop === 'begin') {
        return (...params: unknown[]) => {
          const body = params.pop() as (tx: PostgresSql) => unknown;
          return transaction(reserveConnection ?? (() => target.reserve()), typeof params[0] === 'string' ? params[0] : '', body);
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
}

/**
 * postgres.js 3.4.9 can send a transaction's BEGIN down a connection that is busy with other queries
 * without reserving it (porsager/postgres#1189): under load the transaction fails with
 * UNSAFE_TRANSACTION, or shares its connection. A transaction here first takes an idle connection of
 * its own, then begins on it.
 */
async function transaction(reserveConnection: () => Promise<postgres.ReservedSql>, options: string, body: (tx: PostgresSql) => unknown) {
  const reserved = await reserveConnection();
  const { own, lost, connectionLost } = watchedForClose(reserved);
  try {
    // BEGIN shares a socket write with the body's first statement (postgres.js sends what one tick
    // queued on a connection together) instead of taking a round trip of its own. A postgres.js query
    // is sent only when executed or awaited, so execute() puts it first in line; nothing else can use
    // this reserved connection, and a BEGIN there fails only with the connection, failing the rest too.
    const begun = own.unsafe(`begin ${options.replace(/[^a-z ]/gi, '')}`, [], { onexecute: connectionLost.watch } as object).execute();
    try {
      // A body that ends with commitBehind has its COMMIT sent behind its last statements without
      // waiting for their answers (a statement that fails aborts the transaction, and PostgreSQL then
      // answers that COMMIT with a rollback).
      const ended = Promise.resolve(body(preparing(own))).then((result) => (result instanceof CommitBehind ? commitBehindLast(own, result.last) : { result, committed: false }));
      // Statements queued on a connection that closes are never answered (porsager/postgres#1186): the
      // transaction fails with the connection instead of waiting for them.
      const [, { result, committed }] = await Promise.race([Promise.all([begun, ended]), lost]);
      if (!committed) await own.unsafe('commit');
      return result;
    } catch (err) {
      if (!connectionLost.error) await own.unsafe('rollback').catch(() => {}); // a broken connection has rolled back by itself
      throw err;
    }
  } finally {
    // A closed connection given back breaks the pool: the next query sent to it is never answered
    // (porsager/postgres#1199). postgres.js has already put it with its closed ones, to connect again.
    if (!connectionLost.error) {
      connectionLost.unwatch();
      reserved.release();
    }
  }
}

/** How long a reserve waits after a connection of its pool closed before it asks again. */
const ASK_AGAIN_AFTER_CLOSE_MS = 1_000;

/**
 * sql.reserve(), asked again when a connection of the pool closes while it waits: postgres.js 3.4.9
 * hands a waiting reserve to the closed connection's reconnect, which drops it (porsager/postgres#1195),
 * and it never settles. `waiting`: told of each close (postgres.js's `onclose`). The first connection
 * that comes is kept, one that comes later is given back; the latest ask's failure is the answer.
 */
function reserve(sql: PostgresSql, waiting: Set<() => void>): Promise<postgres.ReservedSql> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let latest = 0;
    let again: NodeJS.Timeout | undefined;
    const settle = () => {
      settled = true;
      waiting.delete(toldOfClose);
      clearTimeout(again);
    };
    const ask = () => {
      const n = ++latest;
      sql.reserve().then(
        (reserved) => {
          if (settled) return reserved.release();
          settle();
          resolve(reserved);
        },
        (err: unknown) => {
          if (settled || n !== latest) return;
          settle();
          reject(err);
        },
      );
    };
    // Not at once: postgres.js tells of the close before it reconnects, and that reconnect is what
    // takes (and may drop) the waiting reserve.
    const toldOfClose = () => {
      again ??= setTimeout(() => {
        again = undefined;
        if (!settled) ask();
      }, ASK_AGAIN_AFTER_CLOSE_MS);
    };
    waiting.add(toldOfClose);
    ask();
  });
}

/**
 * A reserved connection that says when it closes (through the hook postgres.js's own sql.begin uses),
 * and refuses statements from then on: one sent to a closed connection is never answered, and its
 * write throws where nobody can catch it.
 */
function watchedForClose(reserved: postgres.ReservedSql) {
  type Connection = { onclose: ((err: Error) => void) | null };
  let connection: Connection | undefined;
  let fail!: (err: Error) => void;
  const lost = new Promise<never>((_, reject) => (fail = reject));
  lost.catch(() => {}); // raced against the transaction; not an unhandled rejection when nobody waits
  const connectionLost = {
    error: undefined as Error | undefined,
    /** postgres.js's `onexecute`, called with the connection as the BEGIN is sent; true: sending goes on as usual. */
    watch: (c: Connection) => {
      connection = c;
      c.onclose = (err) => fail((connectionLost.error = err));
      return true;
    },
    unwatch: () => {
      if (connection) connection.onclose = null;
    },
  };
  const refuseOnceLost = () => {
    if (connectionLost.error) throw connectionLost.error;
  };
  const unsafe = (...args: Parameters<PostgresSql['unsafe']>) => {
    refuseOnceLost();
    return reserved.unsafe(...args);
  };
  const own = new Proxy(reserved, {
    apply(target, self, args) {
      refuseOnceLost();
      return Reflect.apply(target, self, args);
    },
    get: (target, prop, receiver) => (prop === 'unsafe' ? unsafe : Reflect.get(target, prop, receiver)),
  });
  return { own, lost, connectionLost };
}

class CommitBehind {
  constructor(readonly last: Promise<unknown>) {}
}

/**
 * What a transaction's body returns when `last` holds its final statements, already sent: the COMMIT
 * follows them at once instead of a round trip later, and the transaction answers what `last`
 * resolves to. Nothing may be sent on the transaction after it.
 */
export const commitBehind = <T>(last: Promise<T>): T => new CommitBehind(last) as T;

async function commitBehindLast(own: PostgresSql, last: Promise<unknown>) {
  last.catch(() => {}); // its failure is reported below, even if it comes while the COMMIT waits its turn
  // The statements in `last` reach postgres.js a few promise steps after they are called (through
  // drizzle). A nextTick runs once every promise step now queued has run, so the COMMIT is surely
  // queued behind them, and before postgres.js sends what the tick queued (at setImmediate): one write.
  await new Promise((resolve) => process.nextTick(resolve));
  const commit = own.unsafe('commit').execute();
  commit.catch(() => {}); // a failed statement in `last` is the error to report; the commit's is the same broken transaction
  const [result, done] = await Promise.all([last, commit]);
  // Only a statement sent without being awaited or handed to `last` can have aborted the transaction unseen.
  if (done.command !== 'COMMIT') throw new Error(`The transaction ended with ${done.command}, not COMMIT: one of its statements failed`);
  return { result, committed: true };
}

/**
 * Connections of the embedded database's main pool: they take turns on its one session, between
 * transactions (pglite-worker.ts). On one connection every transaction waited for it to be idle, then
 * took a trip to the database thread and back of its own; on four, transactions that come together
 * reach that thread together and run back to back in one wake. In the run-cost bench (3-token runs from
 * 20 clients, three rounds beside one connection) a run took 12-34 % less time and 2-28 % less CPU.
 */
const PGLITE_POOL_SIZE = 4;

/**
 * PGlite holds its folder alone: two processes on one folder lose data silently (DESIGN §2),
 * so a lock file guards it, and a folder whose first start never finished is set aside.
 */
async function openPglite(dataDir: string, migrations: string): Promise<Database> {
  const { drizzle } = await import('drizzle-orm/postgres-js');
  const { migrate } = await import('drizzle-orm/postgres-js/migrator');
  mkdirSync(dataDir, { recursive: true });
  const releaseLock = takeLock(path.join(dataDir, 'studio.lock'));
  let thread: PgliteThread | undefined;
  try {
    const pgdata = path.join(dataDir, 'pgdata');
    const ready = path.join(dataDir, 'pgdata.ready');
    if (existsSync(pgdata) && !existsSync(ready)) {
      const aside = `${pgdata}.incomplete-${Date.now()}`;
      renameSync(pgdata, aside);
      process.emitWarning(`The embedded database in ${pgdata} was never fully initialised; moved it to ${aside} and starting fresh.`);
    }
    // Creating the database grows PGlite's memory for good: a process of its own does it.
    if (!existsSync(ready)) await createPglite(pgdata);
    const opened = (thread = await PgliteThread.start(pgdata));
    const sql = postgresClient(undefined, opened.clientOptions({ connections: PGLITE_POOL_SIZE }));
    const readSql = postgresClient(undefined, opened.clientOptions({ priority: true }));
    const { stats, logger, onStatement } = countingLogger();
    const db = drizzle(sql, { schema, logger });
    await migrate(db, { migrationsFolder: migrations });
    if (!existsSync(ready)) writeFileSync(ready, new Date().toISOString() + '\n');
    return {
      db: db as unknown as Db,
      kind: 'pglite',
      poolSize: PGLITE_POOL_SIZE,
      stats,
      onStatement,
      leaseDb: db as unknown as Db,
      readDb: drizzle(readSql, { schema, logger }) as unknown as Db,
      close: async () => {
        await Promise.all([sql.end({ timeout: 5 }), readSql.end({ timeout: 5 })]);
        await opened.close();
        releaseLock();
      },
    };
  } catch (err) {
    await thread?.close();
    releaseLock();
    throw err;
  }
}

export class DataDirLockedError extends Error {}

/**
 * What the lock file records about its holder: the PID, and the process's start time (from
 * /proc/<pid>/stat), because after a crash and a reboot or a long uptime the PID may belong to an
 * unrelated process, which must not keep the studio from starting.
 */
export function lockRecord(pid = process.pid): string {
  return JSON.stringify({ pid, started: processStartTime(pid) });
}

/** The process's start time in clock ticks since boot (Linux), or null where /proc does not tell. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22; the command name (field 2) may hold spaces and parentheses, so count from its closing one.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function readLockOwner(file: string): { pid: number; started: string | null } {
  const text = readFileSync(file, 'utf8').trim();
  try {
    const { pid, started } = JSON.parse(text);
    return { pid: Number(pid), started: typeof started === 'string' ? started : null };
  } catch {
    return { pid: Number(text), started: null }; // a lock written before start times were recorded
  }
}

function holderAlive(owner: { pid: number; started: string | null }): boolean {
  if (!owner.pid || owner.pid === process.pid || !isAlive(owner.pid)) return false;
  if (owner.started === null) return true; // nothing to compare: the PID is all we know
  const started = processStartTime(owner.pid);
  return started === null || started === owner.started;
}

function takeLock(file: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, lockRecord());
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = readLockOwner(file);
      if (holderAlive(owner)) {
        throw new DataDirLockedError(
          `Another AI Story process (pid ${owner.pid}) is using ${path.dirname(file)}. Stop it, or set DATA_DIR to another folder.`,
        );
      }
      rmSync(file, { force: true }); // stale: its process crashed, or the PID now belongs to another program
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

/**
 * The database could not be reached (connection refused, reset or closed, a server shutting down), as
 * opposed to a statement that failed: worth retrying once the database is back.
 */
export function isConnectionError(err: unknown): boolean {
  for (let e: any = err; e; e = e.cause) {
    const code = String(e.code ?? '');
    if (/^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|CONNECTION_\w+|CONNECT_TIMEOUT)$/.test(code)) return true;
    if (/^(08|57P0[1-3])/.test(code)) return true; // SQLSTATE connection exception, admin/crash shutdown
  }
  return false;
}
