import { eq, sql } from 'drizzle-orm';
import { integer, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitBehind, type Database } from '../src/db/client.ts';
import { fixedStatement, given } from '../src/db/fixed-statement.ts';
import { createTestDatabase, type TestDatabase } from './helpers.ts';

const probes = pgTable('fixed_statement_probe', {
  id: integer('id').primaryKey(),
  label: text('label').notNull(),
  detail: jsonb('detail'),
  seenAt: timestamp('seen_at', { withTimezone: true, mode: 'date' }),
});

const insertProbe = fixedStatement('probe_insert', (db) =>
  db
    .insert(probes)
    .values({ id: sql.placeholder('id'), label: sql.placeholder('label'), detail: sql.placeholder('detail'), seenAt: sql.placeholder('seenAt') })
    .returning(),
);
const relabel = fixedStatement('probe_relabel', (db) =>
  db
    .update(probes)
    .set({ label: given(probes.label, 'label'), detail: given(probes.detail, 'detail') })
    .where(eq(probes.id, sql.placeholder('id')))
    .returning({ id: probes.id, label: probes.label }),
);
const probeById = fixedStatement('probe_by_id', (db) => db.select().from(probes).where(eq(probes.id, sql.placeholder('id'))));

describe('a statement built once, run on the pool and inside transactions', () => {
  let testDb: TestDatabase;
  let database: Database;
  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = await testDb.open();
    await database.db.execute(sql`create table fixed_statement_probe (id integer primary key, label text not null, detail jsonb, seen_at timestamptz)`);
  });
  afterAll(async () => {
    await database?.close();
    await testDb?.destroy();
  });

  it('maps values and rows as drizzle does, and sends a null as SQL NULL', async () => {
    const seenAt = new Date('2026-01-02T03:04:05.678Z');
    const [row] = await insertProbe(database.db, { id: 1, label: '第一', detail: { shots: [1, 2], note: '镜头' }, seenAt });
    expect(row).toEqual({ id: 1, label: '第一', detail: { shots: [1, 2], note: '镜头' }, seenAt });
    await insertProbe(database.db, { id: 2, label: 'none', detail: null, seenAt: null });
    const nulls: any = await database.db.execute(sql`select detail is null as no_detail, seen_at is null as no_time from fixed_statement_probe where id = 2`);
    expect(nulls[0]).toEqual({ no_detail: true, no_time: true });
    expect(await probeById(database.db, { id: 2 })).toEqual([{ id: 2, label: 'none', detail: null, seenAt: null }]);
  });

  it("runs on a transaction's own connection: seen inside it, undone with it", async () => {
    const undo = new Error('undo');
    await expect(
      database.db.transaction(async (tx) => {
        await insertProbe(tx, { id: 10, label: 'inside', detail: [], seenAt: null });
        expect(await relabel(tx, { id: 10, label: 'renamed', detail: { n: 1 } })).toEqual([{ id: 10, label: 'renamed' }]);
        expect((await probeById(tx, { id: 10 }))[0]).toMatchObject({ label: 'renamed', detail: { n: 1 } });
        throw undo;
      }),
    ).rejects.toBe(undo);
    expect(await probeById(database.db, { id: 10 })).toEqual([]);
  });

  it('commits a transaction right behind its last statements (commitBehind), answering their result', async () => {
    const label = await database.db.transaction(async (tx) => {
      await insertProbe(tx, { id: 30, label: 'first', detail: null, seenAt: null });
      return commitBehind(relabel(tx, { id: 30, label: 'last', detail: { n: 2 } }).then(([row]) => row.label));
    });
    expect(label).toBe('last');
    expect((await probeById(database.db, { id: 30 }))[0]).toMatchObject({ label: 'last', detail: { n: 2 } });
    // Many at once, on every connection the pool has.
    const ids = Array.from({ length: 12 }, (_, i) => 300 + i);
    await Promise.all(ids.map((id) => database.db.transaction(async (tx) => commitBehind(insertProbe(tx, { id, label: `behind ${id}`, detail: null, seenAt: null })))));
    for (const id of ids) expect(await probeById(database.db, { id })).toHaveLength(1);
  });

  it('undoes the whole transaction when one of the last statements fails, and its connection serves the next one', async () => {
    await insertProbe(database.db, { id: 40, label: 'taken', detail: null, seenAt: null });
    const failed = database.db.transaction(async (tx) => {
      await insertProbe(tx, { id: 41, label: 'before', detail: null, seenAt: null });
      return commitBehind(Promise.all([insertProbe(tx, { id: 42, label: 'beside', detail: null, seenAt: null }), insertProbe(tx, { id: 40, label: 'again', detail: null, seenAt: null })]));
    });
    await expect(failed).rejects.toSatisfy((err: any) => err.cause?.code === '23505'); // the duplicate's own error
    expect(await probeById(database.db, { id: 41 })).toEqual([]);
    expect(await probeById(database.db, { id: 42 })).toEqual([]);
    // A statement that failed unseen (sent, but neither awaited nor among the last) still fails the transaction.
    const unseen = database.db.transaction(async (tx) => {
      insertProbe(tx, { id: 43, label: 'unseen', detail: null, seenAt: null }).catch(() => {});
      insertProbe(tx, { id: 40, label: 'unseen', detail: null, seenAt: null }).catch(() => {});
      return commitBehind(Promise.resolve('nothing last'));
    });
    await expect(unseen).rejects.toThrow(/ended with ROLLBACK, not COMMIT/);
    expect(await probeById(database.db, { id: 43 })).toEqual([]);
    // Every connection is back in the pool outside any transaction.
    await Promise.all(Array.from({ length: 12 }, (_, i) => database.db.transaction(async (tx) => commitBehind(insertProbe(tx, { id: 400 + i, label: 'next', detail: null, seenAt: null })))));
    expect((await probeById(database.db, { id: 411 }))[0]).toMatchObject({ label: 'next' });
  });

  it('serves many transactions at once, each with its own values', async () => {
    const ids = Array.from({ length: 12 }, (_, i) => 100 + i);
    await Promise.all(
      ids.map((id) =>
        database.db.transaction(async (tx) => {
          await insertProbe(tx, { id, label: `probe ${id}`, detail: { id }, seenAt: new Date() });
          await relabel(tx, { id, label: `done ${id}`, detail: { id, done: true } });
        }),
      ),
    );
    for (const id of ids) expect((await probeById(database.db, { id }))[0]).toMatchObject({ label: `done ${id}`, detail: { id, done: true } });
  });

  it('refuses a call that leaves a value out, naming it, and writes nothing', async () => {
    await expect(insertProbe(database.db, { id: 20, label: 'no detail', seenAt: null })).rejects.toThrow('No value for placeholder "detail"');
    expect(await probeById(database.db, { id: 20 })).toEqual([]);
  });
});
