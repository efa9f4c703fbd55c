import type { StageKey, TemplateVariable } from '@ai-story/contracts';
import { and, asc, count, desc, eq, ilike, isNull, notExists, or, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { projects, promptSets, promptTemplates, promptTemplateVersions } from '../db/schema.ts';
import { containing } from '../db/like.ts';

export type PromptSetRow = typeof promptSets.$inferSelect;
export type PromptTemplateRow = typeof promptTemplates.$inferSelect;
export type PromptTemplateVersionRow = typeof promptTemplateVersions.$inferSelect;

/** What a new template starts with: one per stage. */
export interface TemplateSeed {
  stage: StageKey;
  content: string;
  variables: TemplateVariable[];
}

/**
 * Serialises every change of which set is the default (and start-up seeding, which may run on several
 * instances at once): "exactly one default" holds only if no two such transactions interleave.
 */
const DEFAULT_SET_LOCK = 0x50524f4d50; // "PROMP"
const lockDefault = (tx: Db) => tx.execute(sql`select pg_advisory_xact_lock(${DEFAULT_SET_LOCK})`);

/** Sets a user may see: the shared ones and their own. */
const visibleTo = (userId: string) => or(isNull(promptSets.ownerId), eq(promptSets.ownerId, userId));

export class PromptRepository {
  /** `readDb`: where a project's page reads its prompt set and the sets to pick from (Database.readDb). */
  constructor(
    private readonly db: Db,
    private readonly readDb: Db = db,
  ) {}

  // ---- sets ----
  /** The sets a user may pick (a project page's prompt-set picker), read first in line. */
  async listSets(userId: string, page: number, pageSize: number, search?: string) {
    const where = and(visibleTo(userId), search ? ilike(promptSets.name, containing(search)) : undefined);
    const [rows, [{ n }]] = await Promise.all([
      this.readDb
        .select()
        .from(promptSets)
        .where(where)
        // The default first, then the shared sets, then the user's own.
        .orderBy(desc(promptSets.isDefault), sql`${promptSets.ownerId} is null desc`, asc(promptSets.createdAt), asc(promptSets.id))
        .limit(pageSize)
        .offset((page - 1) * pageSize),
      this.readDb.select({ n: count() }).from(promptSets).where(where),
    ]);
    return { count: n, rows };
  }

  findSet = async (id: string): Promise<PromptSetRow | undefined> => (await this.db.select().from(promptSets).where(eq(promptSets.id, id)))[0];

  findDefaultSet = async (): Promise<PromptSetRow | undefined> =>
    (await this.db.select().from(promptSets).where(eq(promptSets.isDefault, true)).orderBy(asc(promptSets.createdAt)).limit(1))[0];

  templatesOf = (setId: string): Promise<PromptTemplateRow[]> =>
    this.db.select().from(promptTemplates).where(eq(promptTemplates.setId, setId)).orderBy(asc(promptTemplates.stage));

  /** A set and its first version of every template, in one transaction: never a set without its templates. */
  async createSet(values: { name: string; description: string; ownerId: string | null }, templates: TemplateSeed[], createdBy: string) {
    return this.db.transaction(async (tx) => {
      const [set] = await tx.insert(promptSets).values(values).returning();
      await insertTemplates(tx, templates.map((t) => ({ ...t, setId: set.id })), createdBy);
      return set;
    });
  }

  updateSet = async (id: string, values: { name?: string; description?: string }) =>
    (await this.db.update(promptSets).set({ ...values, updatedAt: new Date() }).where(eq(promptSets.id, id)).returning())[0];

  /** Marks one set the default and unmarks the previous one, in one transaction. */
  async markDefault(id: string) {
    await this.db.transaction(async (tx) => {
      await lockDefault(tx);
      await tx.update(promptSets).set({ isDefault: false }).where(and(eq(promptSets.isDefault, true), sql`${promptSets.id} <> ${id}`));
      await tx.update(promptSets).set({ isDefault: true, updatedAt: new Date() }).where(eq(promptSets.id, id));
    });
  }

  /**
   * Deletes a set unless it is the default (checked under the default lock, so it cannot become the
   * default meanwhile). Projects that chose it go back to following the default set.
   */
  async deleteSet(id: string): Promise<'deleted' | 'default' | 'missing'> {
    return this.db.transaction(async (tx) => {
      await lockDefault(tx);
      const [set] = await tx.select({ isDefault: promptSets.isDefault }).from(promptSets).where(eq(promptSets.id, id));
      if (!set) return 'missing';
      if (set.isDefault) return 'default';
      await tx.update(projects).set({ promptSetId: null }).where(eq(projects.promptSetId, id));
      await tx.delete(promptSets).where(eq(promptSets.id, id));
      return 'deleted';
    });
  }

  // ---- templates ----
  async listTemplates(userId: string, filter: { setId?: string; stage?: StageKey }, page: number, pageSize: number) {
    const where = and(
      visibleTo(userId),
      filter.setId ? eq(promptTemplates.setId, filter.setId) : undefined,
      filter.stage ? eq(promptTemplates.stage, filter.stage) : undefined,
    );
    const [rows, [{ n }]] = await Promise.all([
      this.db
        .select({ template: promptTemplates, set: promptSets })
        .from(promptTemplates)
        .innerJoin(promptSets, eq(promptSets.id, promptTemplates.setId))
        .where(where)
        .orderBy(desc(promptSets.isDefault), asc(promptSets.createdAt), asc(promptSets.id), asc(promptTemplates.stage))
        .limit(pageSize)
        .offset((page - 1) * pageSize),
      this.db.select({ n: count() }).from(promptTemplates).innerJoin(promptSets, eq(promptSets.id, promptTemplates.setId)).where(where),
    ]);
    return { count: n, rows };
  }

  findTemplate = async (id: string) =>
    (
      await this.db
        .select({ template: promptTemplates, set: promptSets })
        .from(promptTemplates)
        .innerJoin(promptSets, eq(promptSets.id, promptTemplates.setId))
        .where(eq(promptTemplates.id, id))
    )[0];

  /**
   * Saves content as the template's next version. The row lock makes two simultaneous saves become
   * two versions rather than one lost update (or a unique-index error).
   */
  async saveVersion(templateId: string, content: string, variables: TemplateVariable[], createdBy: string) {
    return this.db.transaction(async (tx) => {
      const [current] = await tx.select().from(promptTemplates).where(eq(promptTemplates.id, templateId)).for('update');
      const version = current.version + 1;
      const now = new Date();
      await tx.insert(promptTemplateVersions).values({ templateId, version, content, variables, createdBy });
      const [saved] = await tx.update(promptTemplates).set({ content, variables, version, updatedAt: now }).where(eq(promptTemplates.id, templateId)).returning();
      await tx.update(promptSets).set({ updatedAt: now }).where(eq(promptSets.id, current.setId));
      return saved;
    });
  }

  async versions(templateId: string, page: number, pageSize: number) {
    const where = eq(promptTemplateVersions.templateId, templateId);
    const [rows, [{ n }]] = await Promise.all([
      this.db.select().from(promptTemplateVersions).where(where).orderBy(desc(promptTemplateVersions.version)).limit(pageSize).offset((page - 1) * pageSize),
      this.db.select({ n: count() }).from(promptTemplateVersions).where(where),
    ]);
    return { count: n, rows };
  }

  version = async (templateId: string, version: number): Promise<PromptTemplateVersionRow | undefined> =>
    (
      await this.db
        .select()
        .from(promptTemplateVersions)
        .where(and(eq(promptTemplateVersions.templateId, templateId), eq(promptTemplateVersions.version, version)))
    )[0];

  /** The stage's template in the given set if it has one, else in the default set (one query). */
  async templateFor(setId: string | null, stage: StageKey): Promise<PromptTemplateRow | undefined> {
    const inSet: SQL = setId ? or(eq(promptSets.id, setId), eq(promptSets.isDefault, true))! : eq(promptSets.isDefault, true);
    const [row] = await this.db
      .select({ template: promptTemplates })
      .from(promptTemplates)
      .innerJoin(promptSets, eq(promptSets.id, promptTemplates.setId))
      .where(and(eq(promptTemplates.stage, stage), inSet))
      .orderBy(setId ? sql`${promptSets.id} = ${setId} desc` : asc(promptSets.createdAt))
      .limit(1);
    return row?.template;
  }

  // ---- projects' choice ----
  /** The prompt set a project runs with, as its page shows it, read first in line. */
  projectPromptSet = async (projectId: string) =>
    (
      await this.readDb
        .select({ id: promptSets.id, name: promptSets.name })
        .from(projects)
        .innerJoin(promptSets, eq(promptSets.id, projects.promptSetId))
        .where(eq(projects.id, projectId))
    )[0];

  setProjectPromptSet = async (projectId: string, setId: string | null) => {
    await this.db.update(projects).set({ promptSetId: setId, updatedAt: new Date() }).where(eq(projects.id, projectId));
  };

  // ---- start-up ----
  /**
   * Makes sure a shared set exists, that one set is the default, and that every set has a template
   * for every stage (a stage added since the last start gets its shipped template). Idempotent, and
   * safe when several instances start together.
   */
  async ensureShipped(shipped: { name: string; description: string }, templates: TemplateSeed[]) {
    return this.db.transaction(async (tx) => {
      await lockDefault(tx);
      let [shared] = await tx.select().from(promptSets).where(isNull(promptSets.ownerId)).orderBy(desc(promptSets.isDefault), asc(promptSets.createdAt)).limit(1);
      const created = !shared;
      if (!shared) [shared] = await tx.insert(promptSets).values({ ...shipped, ownerId: null }).returning();
      const [hasDefault] = await tx.select({ id: promptSets.id }).from(promptSets).where(eq(promptSets.isDefault, true)).limit(1);
      if (!hasDefault) await tx.update(promptSets).set({ isDefault: true }).where(eq(promptSets.id, shared.id));

      let added = 0;
      for (const t of templates) {
        const hasStage = tx
          .select({ one: sql`1` })
          .from(promptTemplates)
          .where(and(eq(promptTemplates.setId, promptSets.id), eq(promptTemplates.stage, t.stage)));
        const lacking = await tx.select({ id: promptSets.id }).from(promptSets).where(notExists(hasStage));
        if (lacking.length === 0) continue;
        added += await insertTemplates(tx, lacking.map((s) => ({ ...t, setId: s.id })), null);
      }
      return { created, added };
    });
  }
}

/** Inserts templates at version 1, each with its version-1 record. */
async function insertTemplates(tx: Db, templates: (TemplateSeed & { setId: string })[], createdBy: string | null) {
  if (templates.length === 0) return 0;
  const rows = await tx
    .insert(promptTemplates)
    .values(templates.map((t) => ({ setId: t.setId, stage: t.stage, content: t.content, variables: t.variables, version: 1 })))
    .onConflictDoNothing({ target: [promptTemplates.setId, promptTemplates.stage] })
    .returning();
  if (rows.length) {
    await tx
      .insert(promptTemplateVersions)
      .values(rows.map((r) => ({ templateId: r.id, version: 1, content: r.content, variables: r.variables, createdBy })));
  }
  return rows.length;
}
