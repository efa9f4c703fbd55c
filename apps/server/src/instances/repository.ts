import { eq, lte, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { instances, type InstanceRow } from '../db/schema.ts';

/**
 * Who may share the database: `single` — one studio per database (PostgreSQL without REDIS_URL);
 * `shared` — scale-out mode, any number of instances, each owning its runs; `sole` — the embedded
 * database, whose folder lock already proves every other instance is gone.
 */
export type LeaseMode = 'single' | 'shared' | 'sole';

/** Serialises start-ups: two studios starting together would each find no live lease and both move in. */
const START_LOCK = 0x41_49_53_54; // "AIST"

const expiresIn = (leaseMs: number) => sql`now() + ${leaseMs} * interval '1 millisecond'`;

export class InstanceRepository {
  constructor(private readonly db: Db) {}

  /**
   * Takes a lease for a new instance, in one transaction: leases that expired (or, in `sole` mode, all
   * others) are taken over — their rows deleted, which their owners find on their next heartbeat —
   * then, in `single` mode, a live lease left by another studio is the answer instead of a new row.
   */
  register(values: { host: string; pid: number; leaseMs: number; mode: LeaseMode }): Promise<{ instance: InstanceRow } | { holder: InstanceRow }> {
    return this.db.transaction(async (tx) => {
      // A transaction-level lock: it ends with the transaction, so it never outlives a dropped connection.
      await tx.execute(sql`select pg_advisory_xact_lock(${START_LOCK})`);
      // Deleting first matters: a lease renewed at this very moment is rechecked by the DELETE and kept,
      // and the check below then sees it.
      await tx.delete(instances).where(values.mode === 'sole' ? undefined : lte(instances.expiresAt, sql`now()`));
      if (values.mode === 'single') {
        const [holder] = await tx.select().from(instances).limit(1);
        if (holder) return { holder };
      }
      const [instance] = await tx
        .insert(instances)
        .values({ host: values.host, pid: values.pid, expiresAt: expiresIn(values.leaseMs) })
        .returning();
      return { instance };
    });
  }

  /**
   * Extends a lease. Conditional on the row still being there: false means another instance took the
   * lease over after it expired (and recovered this instance's runs), so this one must stop them.
   */
  async renew(id: string, leaseMs: number): Promise<boolean> {
    const rows = await this.db
      .update(instances)
      .set({ heartbeatAt: sql`now()`, expiresAt: expiresIn(leaseMs) })
      .where(eq(instances.id, id))
      .returning({ id: instances.id });
    return rows.length > 0;
  }

  release = async (id: string) => {
    await this.db.delete(instances).where(eq(instances.id, id));
  };
}
