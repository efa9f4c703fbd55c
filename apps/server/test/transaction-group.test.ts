import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Database, Db } from '../src/db/client.ts';
import { TransactionGroup, type Share } from '../src/db/transaction-group.ts';
import { createTestDatabase, type TestDatabase } from './helpers.ts';

describe('writes that come together share a transaction', () => {
  let testDb: TestDatabase;
  let database: Database;
  let transactions: number;
  /** The database's transactions, counted. */
  const counted: Pick<Db, 'transaction'> = { transaction: (body) => (transactions++, database.db.transaction(body)) };

  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = await testDb.open();
    await database.db.execute(sql`create table group_probe (project_id text primary key, n serial)`);
  });
  afterAll(async () => {
    await database?.close();
    await testDb?.destroy();
  });
  beforeEach(async () => {
    transactions = 0;
    await database.db.execute(sql`truncate group_probe restart identity`);
  });

  /** Inserts its project's row and answers the project; `refuse` makes its answer throw after the insert. */
  const insert = (projectId: string, refuse?: Error): Share<string> => ({
    projectId,
    send: async (tx) => {
      const written = tx.execute(sql`insert into group_probe (project_id) values (${projectId})`);
      return {
        checked: !!refuse,
        answer: written.then(() => {
          if (refuse) throw refuse;
          return projectId;
        }),
      };
    },
  });
  const saved = async () => ((await database.db.execute(sql`select project_id from group_probe order by n`)) as unknown as { project_id: string }[]).map((r) => r.project_id);

  it('sends the first share at once and those that come meanwhile together, in project order, each answered its own', async () => {
    const group = new TransactionGroup(counted, 1);
    const projects = ['p9', 'p8', 'p7', 'p6', 'p5', 'p4', 'p3', 'p2', 'p1'];
    expect(await Promise.all(projects.map((p) => group.run(insert(p))))).toEqual(projects);
    expect(transactions).toBe(2);
    // The first alone, then the other eight in the order of their projects (the lock order).
    expect(await saved()).toEqual(['p9', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8']);
  });

  it('fails only the shares that fail: the others go again, each in a transaction of its own, and are saved', async () => {
    const group = new TransactionGroup(counted, 1);
    await group.run(insert('taken'));
    transactions = 0;
    const refused = new Error('no longer active');
    const answers = await Promise.allSettled([insert('a'), insert('taken'), insert('b'), insert('c', refused), insert('d')].map((s) => group.run(s)));
    expect(answers.map((a) => a.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
    expect((answers[1] as PromiseRejectedResult).reason).toMatchObject({ cause: { code: '23505' } });
    expect((answers[3] as PromiseRejectedResult).reason).toBe(refused);
    // The first share alone; the other four together, undone by the duplicate; then each on its own.
    expect(transactions).toBe(1 + 1 + 4);
    expect((await saved()).sort()).toEqual(['a', 'b', 'd', 'taken']);
  });

  it('keeps as many transactions on their way as it is given, and no more', async () => {
    let open = 0;
    let most = 0;
    const watched: Pick<Db, 'transaction'> = {
      transaction: async (body) => {
        most = Math.max(most, ++open);
        try {
          return await counted.transaction(body);
        } finally {
          open--;
        }
      },
    };
    const group = new TransactionGroup(watched, 2);
    const projects = Array.from({ length: 20 }, (_, i) => `q${String(i).padStart(2, '0')}`);
    await Promise.all(projects.map((p) => group.run(insert(p))));
    expect(most).toBe(2);
    expect(transactions).toBe(3); // two alone, then the other eighteen together
    expect((await saved()).sort()).toEqual(projects);
  });

  it('sends shares given together in one transaction though the group is idle, and fails them apart', async () => {
    const group = new TransactionGroup(counted, 2);
    expect(await Promise.all(group.runTogether<[string, string]>([insert('ending'), insert('usage')]))).toEqual(['ending', 'usage']);
    expect(transactions).toBe(1);
    transactions = 0;
    // The second of a pair fails (its row is there already): the first is saved all the same.
    const [ending, usage] = await Promise.allSettled(group.runTogether<[string, string]>([insert('second ending'), insert('usage')]));
    expect(ending).toEqual({ status: 'fulfilled', value: 'second ending' });
    expect(usage).toMatchObject({ status: 'rejected', reason: { cause: { code: '23505' } } });
    expect(transactions).toBe(1 + 2);
    expect(await saved()).toEqual(['ending', 'usage', 'second ending']);
  });

  it('keeps what an unchecked share wrote when only its answer fails, and fails that share alone', async () => {
    const group = new TransactionGroup(counted, 2);
    const broken: Share<string> = {
      projectId: 'broken',
      send: async (tx) => ({ checked: false, answer: tx.execute(sql`insert into group_probe (project_id) values ('broken')`).then(() => Promise.reject(new Error('answer lost'))) }),
    };
    const [ending, usage] = await Promise.allSettled(group.runTogether<[string, string]>([insert('ending'), broken]));
    expect(ending).toEqual({ status: 'fulfilled', value: 'ending' });
    expect(usage).toMatchObject({ status: 'rejected', reason: { message: 'answer lost' } });
    expect(transactions).toBe(1); // nothing sent again
    expect((await saved()).sort()).toEqual(['broken', 'ending']);
  });
});
