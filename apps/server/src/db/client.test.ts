import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { DataDirLockedError, isConnectionError, lockRecord, openDatabase, processStartTime } from './client.ts';

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ai-story-lock-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('the embedded database folder', () => {
  it('refuses a second studio on a folder another live process holds, and takes over a dead one\'s lock', { timeout: 60_000 }, async () => {
    const dir = tempDir();
    // Another live process holds the lock.
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      writeFileSync(path.join(dir, 'studio.lock'), lockRecord(holder.pid));
      await expect(openDatabase({ dataDir: dir })).rejects.toThrow(DataDirLockedError);
      await expect(openDatabase({ dataDir: dir })).rejects.toThrow(/Another AI Story process/);
    } finally {
      holder.kill();
    }
    await new Promise((r) => holder.once('exit', r));
    const db = await openDatabase({ dataDir: dir }); // the holder is gone: its lock is stale
    await db.close();
  });

  it.runIf(processStartTime(process.pid) !== null)('takes over a lock whose PID now belongs to an unrelated process', { timeout: 60_000 }, async () => {
    const dir = tempDir();
    // A studio crashed, and its PID was given to another program: the PID is alive, the process is not the one that locked.
    const other = spawn('sleep', ['60']);
    try {
      const started = Number(processStartTime(other.pid!));
      writeFileSync(path.join(dir, 'studio.lock'), JSON.stringify({ pid: other.pid, started: String(started - 1) }));
      const db = await openDatabase({ dataDir: dir });
      await db.close();
    } finally {
      other.kill();
    }
  });

  it('sets aside a folder whose first start never finished, and starts fresh', { timeout: 60_000 }, async () => {
    const dir = tempDir();
    mkdirSync(path.join(dir, 'pgdata'));
    writeFileSync(path.join(dir, 'pgdata', 'half-written'), 'x');
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const db = await openDatabase({ dataDir: dir });
      await db.close();
    } finally {
      process.off('warning', onWarning);
    }
    await new Promise((r) => setTimeout(r, 10));
    expect(warnings.join()).toMatch(/never fully initialised/);
  });
});

describe('statements of one transaction sent together', () => {
  it('run in the order they were issued on the embedded database, each with its own result, and roll back together', { timeout: 60_000 }, async () => {
    const database = await openDatabase({ dataDir: tempDir() });
    try {
      const { db } = database;
      await db.execute(sql`create table together (n int primary key)`);
      const results = await db.transaction((tx) =>
        Promise.all(Array.from({ length: 20 }, (_, i) => tx.execute(sql`insert into together values (${i}) returning (select count(*)::int from together) as before`))),
      );
      // Each insert saw exactly the ones issued before it: one at a time, in order (the run start relies on it).
      expect(results.map((r) => (r as unknown as { before: number }[])[0].before)).toEqual(Array.from({ length: 20 }, (_, i) => i));
      await expect(db.transaction((tx) => Promise.all([tx.execute(sql`insert into together values (100)`), tx.execute(sql`insert into together values (0)`)]))).rejects.toThrow();
      const [{ n }] = (await db.execute(sql`select count(*)::int as n from together`)) as unknown as { n: number }[];
      expect(n).toBe(20);
    } finally {
      await database.close();
    }
  });
});

describe('telling an unreachable database from a failed statement', () => {
  it.each([
    [{ code: 'ECONNREFUSED' }, true],
    [{ message: 'Failed query', cause: { code: 'CONNECTION_CLOSED' } }, true],
    [{ code: '57P01' }, true], // admin_shutdown: the server is restarting
    [{ code: '08006' }, true], // connection_failure
    [{ code: '23505' }, false], // a unique violation is the statement's own fault
    [new Error('syntax error'), false],
  ])('%j → %s', (err, unreachable) => {
    expect(isConnectionError(err)).toBe(unreachable);
  });
});
