import { existsSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isConnectionError, postgresClient } from '../src/db/client.ts';
import { TransactionGroup, type Share } from '../src/db/transaction-group.ts';
import { createTestDatabase, TEST_DB, type TestDatabase } from './helpers.ts';
import { behindProxy } from './tcp-proxy.ts';

describe.skipIf(TEST_DB !== 'postgres')('the studio’s PostgreSQL client (PostgreSQL only)', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase();
  });
  afterAll(async () => {
    await testDb?.destroy();
  });
  const url = () => testDb.location.databaseUrl!;

  it('prepares a statement once per connection and reuses it', async () => {
    const client = postgresClient(url(), { max: 1 });
    const db = drizzle(client);
    try {
      for (let i = 0; i < 3; i++) expect((await db.execute(sql`select ${i}::int as n`))[0]).toEqual({ n: i });
      const prepared = await db.execute(sql`select count(*)::int as n from pg_prepared_statements where statement like ${'select $1::int as n%'}`);
      expect(prepared[0]).toEqual({ n: 1 });
    } finally {
      await client.end();
    }
  });

  it('reaches a server on this machine through its Unix socket, named as libpq names it (?host=/dir)', async (ctx) => {
    const tcp = postgresClient(url(), { max: 1 });
    const [{ dirs, port }] = await tcp`select current_setting('unix_socket_directories') as dirs, current_setting('port') as port`;
    await tcp.end();
    const dir = String(dirs).split(',')[0].trim();
    if (!dir || !existsSync(path.join(dir, `.s.PGSQL.${port}`))) ctx.skip(); // a server on another machine
    const viaSocket = new URL(url());
    viaSocket.searchParams.set('host', dir);
    viaSocket.searchParams.set('application_name', 'socket-check');
    const client = postgresClient(viaSocket.toString(), { max: 1 });
    try {
      // No server address on a Unix socket; the other URL parameters still reach the server.
      const [row] = await client`select inet_server_addr() is null as socket, current_database() as db, current_setting('application_name') as app`;
      expect(row).toEqual({ socket: true, db: new URL(url()).pathname.slice(1), app: 'socket-check' });
    } finally {
      await client.end();
    }
  });

  it('keeps each transaction on a connection of its own while every connection is busy with pipelined queries', async () => {
    // The shape in which postgres.js 3.4.9's own sql.begin writes BEGIN down a busy connection without
    // reserving it (porsager/postgres#1189): three connections each running a query with one more
    // pipelined behind it, so the BEGIN that comes next fills a connection's pipeline (max_pipeline 2).
    const smallPipelines = { max: 3, max_pipeline: 2 }; // a postgres.js option its typings leave out
    const client = postgresClient(url(), smallPipelines);
    try {
      for (let round = 0; round < 5; round++) {
        const busy = Array.from({ length: 3 }, () => client`select pg_sleep(0.05)`.execute());
        const pipelined = Array.from({ length: 3 }, (_, i) => client.unsafe(`select ${i} as n`).execute());
        const transactions = Array.from({ length: 3 }, () =>
          client.begin(async (tx) => {
            const [first] = await tx`select txid_current()::text as id`;
            await tx`select pg_sleep(0.01)`;
            const [second] = await tx`select txid_current()::text as id`;
            return { first: first.id as string, second: second.id as string };
          }),
        );
        const [, numbers, ids] = await Promise.all([Promise.all(busy), Promise.all(pipelined), Promise.all(transactions)]);
        expect(numbers.map((r) => r[0].n)).toEqual([0, 1, 2]);
        // Each transaction's statements ran in one transaction, and no two transactions shared one.
        for (const { first, second } of ids) expect(second).toBe(first);
        expect(new Set(ids.map((t) => t.first)).size).toBe(3);
      }
      // Nothing was left open: every connection is back outside a transaction.
      const [open] = await client`select count(*)::int as n from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'`;
      expect(open.n).toBe(0);
    } finally {
      await client.end();
    }
  });

  it('rolls a failed transaction back and gives its connection back', async () => {
    const client = postgresClient(url(), { max: 1 });
    const db = drizzle(client);
    try {
      await db.execute(sql`create table if not exists client_probe (n int)`);
      await expect(
        db.transaction(async (tx) => {
          await tx.execute(sql`insert into client_probe values (1)`);
          throw new Error('changed my mind');
        }),
      ).rejects.toThrow('changed my mind');
      // One connection in the pool: this answers only if the failed transaction released it.
      expect((await db.execute(sql`select count(*)::int as n from client_probe`))[0]).toEqual({ n: 0 });
    } finally {
      await client.end();
    }
  });

  it('a transaction whose connection is cut fails with a connection error, and the pool serves the next queries', async () => {
    // postgres.js 3.4.9 leaves a reserved connection's queued queries pending when it closes
    // (porsager/postgres#1186), and a closed connection given back with release() breaks the pool:
    // the next query on it never settles (#1199). A run's ending, retried after an outage, then waited forever.
    const { proxy, database } = await behindProxy(testDb);
    // One connection: the one cut is the one every later query needs (an idle one's close could race a query).
    const client = postgresClient(database.location.databaseUrl!, { max: 1 });
    try {
      for (let round = 0; round < 3; round++) {
        let cut!: () => void;
        const bodyWaits = new Promise<void>((resolve) => (cut = resolve));
        const transaction = client.begin(async (tx) => {
          await tx`select 1`;
          // Sent together, as shared transactions send their shares: a sleep the cut comes during, then two
          // statements with parameters, new on this connection, so the first waits for a describe and the
          // second waits in the connection's own queue.
          const sent = [tx`select pg_sleep(0.5)`, tx`select ${round}::int as a`, tx`select ${round}::int as b`];
          setTimeout(cut, 100);
          return Promise.allSettled(sent);
        });
        await bodyWaits;
        await proxy.cut();
        await expect(transaction).rejects.toSatisfy(isConnectionError);
        await proxy.restore();
        expect((await client.begin((tx) => tx`select ${round}::int as n`))[0]).toEqual({ n: round });
        expect((await client`select ${round}::int as n`)[0]).toEqual({ n: round });
      }
    } finally {
      await client.end({ timeout: 1 });
      await proxy.close();
    }
  });

  it('a shared transaction cut mid-way fails its shares with the connection error, and the group goes on', async () => {
    const { proxy, database } = await behindProxy(testDb);
    const client = postgresClient(database.location.databaseUrl!, { max: 1 });
    const group = new TransactionGroup(drizzle(client), 1);
    let cut!: () => void;
    const sent = new Promise<void>((resolve) => (cut = resolve));
    // A share whose answer is a statement still queued on the connection when it closes (behind a
    // sleep the cut comes during, and a statement new on this connection, which waits for its describe).
    const slow: Share<number> = {
      projectId: 'p1',
      send: async (tx) => {
        const statements = [tx.execute(sql`select pg_sleep(0.5)`), tx.execute(sql`select ${1}::int as a`), tx.execute(sql`select ${2}::int as b`)];
        for (const s of statements) s.catch(() => {}); // sent now (a statement is sent once awaited)
        setTimeout(cut, 100);
        return { checked: false, answer: statements[2].then(() => 1) };
      },
    };
    const quick = (n: number): Share<number> => ({ projectId: `p${n}`, send: async (tx) => ({ checked: false, answer: tx.execute(sql`select ${n}::int as n`).then((rows) => (rows as unknown as { n: number }[])[0].n) }) });
    try {
      const first = group.run(slow);
      const second = group.run(quick(2)); // waits for the first: the group sends one transaction at a time here
      await sent;
      await proxy.cut();
      await expect(first).rejects.toSatisfy(isConnectionError);
      await proxy.restore();
      // The group's one transaction slot came back: a share sent after the outage is answered.
      await second.catch(() => {}); // it may have left while the database was away
      expect(await group.run(quick(3))).toBe(3);
    } finally {
      await client.end({ timeout: 1 });
      await proxy.close();
    }
  });

  it('a transaction waiting for a busy connection starts once that connection is dropped and connects again', async () => {
    // postgres.js 3.4.9 hands a waiting reserve to the dropped connection's reconnect, which drops it
    // (porsager/postgres#1195): the transaction never started, and a run's ending would wait forever.
    const { proxy, database } = await behindProxy(testDb);
    const client = postgresClient(database.location.databaseUrl!, { max: 1 });
    try {
      await client`select 1`;
      const busy = client`select pg_sleep(5)`.execute();
      await new Promise((r) => setTimeout(r, 50)); // the sleep has the connection (a query is sent a tick after it is called)
      const waiting = client.begin((tx) => tx`select 1 as n`);
      await new Promise((r) => setTimeout(r, 100));
      proxy.drop();
      await expect(busy).rejects.toSatisfy(isConnectionError);
      expect((await waiting)[0]).toEqual({ n: 1 });
    } finally {
      await client.end({ timeout: 1 });
      await proxy.close();
    }
  });
});
