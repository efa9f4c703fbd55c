import { and, asc, desc, eq, gte, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { fixedStatement, placeholders } from '../db/fixed-statement.ts';
import { modelProviders, providerUsage, type ProviderRow } from '../db/schema.ts';
import { ReadCache } from '../read-cache.ts';

/** How long a provider list read may be shared (every run start asks for it). */
const LIST_CACHE_MS = 5_000;

const USAGE_COLUMNS = ['id', 'providerId', 'runId', 'model', 'promptTokens', 'completionTokens', 'estimated', 'ttftMs', 'durationMs', 'outcome', 'cost'] as const;
export type UsageValues = Required<Pick<typeof providerUsage.$inferInsert, (typeof USAGE_COLUMNS)[number]>>;

/** Every run ends with one (db/fixed-statement.ts). A row already saved under its id is left as it is: saving again is harmless. */
const insertUsage = fixedStatement('insert_usage', (db) => db.insert(providerUsage).values(placeholders(USAGE_COLUMNS)).onConflictDoNothing());

export class ProviderRepository {
  /** Rows in here are shared between callers: read them, never change them. */
  private readonly lists = new ReadCache<ProviderRow[]>(LIST_CACHE_MS);

  constructor(private readonly db: Db) {}

  /** `fresh`: read the table now (another instance may have written since the shared read). */
  list = (type?: string, opts: { fresh?: boolean } = {}): Promise<ProviderRow[]> => {
    if (opts.fresh) this.lists.clear();
    return this.lists.get(type ?? '', async () =>
      this.db
        .select()
        .from(modelProviders)
        .where(type ? eq(modelProviders.providerType, type) : undefined)
        .orderBy(desc(modelProviders.priority), asc(modelProviders.createdAt)),
    );
  };

  find = async (id: string) => (await this.db.select().from(modelProviders).where(eq(modelProviders.id, id)))[0];
  insert = async (values: typeof modelProviders.$inferInsert) => this.written((await this.db.insert(modelProviders).values(values).returning())[0]);
  update = async (id: string, values: Partial<typeof modelProviders.$inferInsert>) =>
    this.written((await this.db.update(modelProviders).set({ ...values, updatedAt: new Date() }).where(eq(modelProviders.id, id)).returning())[0]);
  delete = async (id: string) => this.written((await this.db.delete(modelProviders).where(eq(modelProviders.id, id)).returning({ id: modelProviders.id })).length > 0);

  private written<T>(result: T): T {
    this.lists.clear();
    return result;
  }

  countActiveLlm = async () =>
    (await this.db.select({ n: sql<number>`count(*)::int` }).from(modelProviders).where(and(eq(modelProviders.providerType, 'llm'), eq(modelProviders.isActive, true))))[0].n;

  /** `db`: a transaction the row shares (a run's ending's), or the pool. */
  async insertUsage(values: UsageValues, db: Db = this.db) {
    await insertUsage(db, values);
  }

  async usageByDay(providerId: string, since: Date) {
    const day = sql<string>`to_char(date_trunc('day', ${providerUsage.createdAt} at time zone 'UTC'), 'YYYY-MM-DD')`;
    return this.db
      .select({
        day,
        calls: sql<number>`count(*)::int`,
        prompt_tokens: sql<number>`coalesce(sum(${providerUsage.promptTokens}), 0)::int`,
        completion_tokens: sql<number>`coalesce(sum(${providerUsage.completionTokens}), 0)::int`,
        cost: sql<number>`coalesce(sum(${providerUsage.cost}), 0)::float8`,
        failures: sql<number>`count(*) filter (where ${providerUsage.outcome} <> 'ok')::int`,
        ttft_sum: sql<number>`coalesce(sum(${providerUsage.ttftMs}), 0)::float8`,
        ttft_n: sql<number>`count(${providerUsage.ttftMs})::int`,
      })
      .from(providerUsage)
      .where(and(eq(providerUsage.providerId, providerId), gte(providerUsage.createdAt, since)))
      .groupBy(day)
      .orderBy(day);
  }
}
