import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isConnectionError } from './client.ts';
import { PgliteThread } from './pglite-thread.ts';

async function snapshotBytes(thread: PgliteThread) {
  let bytes = 0;
  for await (const chunk of await thread.heapSnapshot()) bytes += (chunk as Buffer).length;
  return bytes;
}

/** A postgres.js client on one connection to the thread, as the studio opens it. */
const clientOf = (thread: PgliteThread, priority = false) => postgres({ ...thread.clientOptions({ priority }), onnotice: () => {} });

describe('the embedded database on its own thread', () => {
  let dir: string;
  let thread: PgliteThread;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ai-story-pglite-thread-'));
    thread = await PgliteThread.start(path.join(dir, 'pgdata'));
  }, 60_000);
  afterAll(async () => {
    await thread.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers pipelined statements, prepared and not, each with its own result and error', async () => {
    const sql = clientOf(thread);
    try {
      await sql`create table pipelined (n int primary key, label text)`;
      // Sent together in one write: the worker runs them in one go and every answer finds its query.
      const inserted = await Promise.all(Array.from({ length: 50 }, (_, i) => sql`insert into pipelined values (${i}, ${'第' + i}) returning label`));
      expect(inserted.map(([row]) => row.label)).toEqual(Array.from({ length: 50 }, (_, i) => '第' + i));
      const [duplicate, after] = await Promise.allSettled([sql`insert into pipelined values (1, 'again')`, sql`select count(*)::int as n from pipelined`]);
      expect(duplicate.status === 'rejected' && (duplicate.reason as { code?: string }).code).toBe('23505');
      expect(after.status === 'fulfilled' && after.value[0].n).toBe(50);
      const [{ big }] = await sql.unsafe(`select repeat('x', 200000) as big`);
      expect(big).toHaveLength(200_000);
    } finally {
      await sql.end();
    }
  });

  it('keeps nothing of what it answered: rows read leave no trace in the thread', async () => {
    const before = await snapshotBytes(thread);
    const sql = clientOf(thread);
    try {
      // 20 MB of rows, each one different, in ten reads.
      for (let i = 0; i < 10; i++) {
        const rows = await sql.unsafe(`select n, repeat(md5(n::text || '-${i}'), 16) as text from generate_series(1, 4000) as n`);
        expect(rows).toHaveLength(4000);
      }
    } finally {
      await sql.end();
    }
    // A heap snapshot holds every object and string the thread keeps: rows kept there (as PGlite's
    // own message parser keeps them) would grow it by more than their text.
    expect((await snapshotBytes(thread)) - before).toBeLessThan(10 * 1024 * 1024);
  }, 60_000);

  it('rolls back what a connection left open when it went away, so the next one starts clean', async () => {
    const first = clientOf(thread);
    await first`create table left_open (n int)`;
    const reserved = await first.reserve();
    await reserved`begin`;
    await reserved`insert into left_open values (1)`;
    reserved.release();
    await first.end(); // ends its connection mid-transaction
    const next = clientOf(thread);
    try {
      const [{ state }] = await next`select count(*)::int as state from left_open`;
      expect(state).toBe(0);
      // and the session is not stuck in a transaction: this one commits
      await next`insert into left_open values (2)`;
      expect((await next`select n from left_open`).map((r) => r.n)).toEqual([2]);
    } finally {
      await next.end();
    }
  });

  it("runs a priority connection's statement before what another connection has waiting", async () => {
    const runs = clientOf(thread);
    const reads = clientOf(thread, true);
    const holder = clientOf(thread);
    try {
      await Promise.all([runs`select 1`, reads`select 1`, holder`select 1`]);
      const answered: string[] = [];
      // A third connection's transaction holds the session while the runs' statements, each in a write
      // of its own as statements come from many runs, and then the read are sent: all of them wait,
      // the read last. (A statement that held the session for a fixed time was outlasted by the
      // sending on a busy machine, and the read then came after the runs for want of arriving in time.)
      const held = await holder.reserve();
      await held`begin`;
      const queuedRuns: Promise<unknown>[] = [];
      for (let i = 0; i < 25; i++) {
        queuedRuns.push(runs`select pg_sleep(0.02)`.then(() => answered.push(`run ${i}`)));
        await new Promise((resolve) => setImmediate(resolve));
      }
      const read = reads`select 1 as n`.then(() => answered.push('read'));
      await held`select 1`; // what was sent before it has reached the thread meanwhile
      await held`commit`;
      held.release();
      await Promise.all([...queuedRuns, read]);
      // Before the runs queued ahead of it.
      expect(answered.indexOf('read')).toBeLessThan(answered.indexOf('run 12'));
      expect(answered.filter((a) => a.startsWith('run'))).toEqual(Array.from({ length: 25 }, (_, i) => `run ${i}`));
    } finally {
      await Promise.all([runs.end(), reads.end(), holder.end()]);
    }
  });

  it("never runs a priority connection's statement inside another connection's transaction", async () => {
    const runs = clientOf(thread);
    const reads = clientOf(thread, true);
    try {
      await Promise.all([runs`create table not_yours (n int)`, reads`select 1`]); // both connected
      const tx = await runs.reserve();
      await tx`begin`;
      await tx`insert into not_yours values (1)`;
      const read = reads`select count(*)::int as n from not_yours`.execute();
      await tx`select 1`; // the read has reached the thread meanwhile
      await tx`rollback`;
      tx.release();
      // Inside the transaction it would have seen the row that was rolled back.
      expect((await read)[0].n).toBe(0);
      // Between a statement's Parse and Describe and its Bind, the session is still its connection's:
      // unprepared statements with parameters are described first, all under the one unnamed name.
      const unprepared = (sql: postgres.Sql, text: string, n: number) => sql.unsafe(text, [n], { prepare: false }).then((rows) => rows[0]);
      const both = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 ? unprepared(reads, 'select $1::int * 10 as read', i) : unprepared(runs, 'select $1::text as run', i))),
      );
      expect(both).toEqual(Array.from({ length: 40 }, (_, i) => (i % 2 ? { read: i * 10 } : { run: String(i) })));
    } finally {
      await Promise.all([runs.end(), reads.end()]);
    }
  });

  it('fails what is in flight as a lost connection when the thread dies, instead of waiting for ever', async () => {
    const own = await PgliteThread.start(path.join(dir, 'dying'));
    const sql = clientOf(own);
    await sql`select 1`;
    const waiting = sql`select pg_sleep(5)`;
    await new Promise((r) => setTimeout(r, 50));
    await (own as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    const err = await waiting.then(() => null, (e: unknown) => e);
    expect(isConnectionError(err)).toBe(true);
    await sql.end({ timeout: 1 }).catch(() => {});
  }, 30_000);
});
