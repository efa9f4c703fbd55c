import { STAGE_KEYS, type ProjectStatus, type StageKey } from '@ai-story/contracts';
import { and, count, desc, eq, getTableColumns, ilike, inArray, ne, or, sql, type SQLWrapper } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { fixedStatement, given } from '../db/fixed-statement.ts';
import { isActiveRun, projectMembers, projectStages, projects, stageRuns, users, type StageRow } from '../db/schema.ts';
import { containing } from '../db/like.ts';

const { output: _output, ...stageColumns } = getTableColumns(projectStages);

/**
 * A stage's "has an output" in SQL, for reads that leave the output itself behind: the service's
 * isDone rule, where JSON null counts as none (the project list's progress, the project's status).
 */
const hasOutput = (output: SQLWrapper) => sql`${output} <> 'null'::jsonb`;

/** The service's isDone in SQL, for the stage row named `s`: completed, with an output, nothing of it out of date. */
const isDoneStage = sql`s.status = 'completed' and ${hasOutput(sql`s.output`)} and not s.stale and jsonb_array_length(s.stale_shot_ids) = 0`;

/** Whether one of the project's stages, the row named `s`, meets `condition`. */
const anyStage = (condition: SQLWrapper) => sql`exists (select from ${projectStages} s where s.project_id = ${projects.id} and ${condition})`;

/**
 * A project's status as its stages and its pipeline make it (DESIGN §1), in SQL so that it is settled
 * by a statement sent behind the ones that change the stages, in the same transaction and the same
 * round trip, with no read of the stages in between. Running anywhere is processing; then a paused
 * pipeline; then any failed or interrupted stage; the project is complete only when its last stage
 * (the export) has a current result, so a pipeline that skipped stages, or whose later stages went
 * out of date, is not finished, whatever came before.
 */
const derivedStatus = sql<ProjectStatus>`case
  when ${projects.pipelineState} in ('running', 'pausing') or ${anyStage(sql`s.status = 'running'`)} then 'processing'
  when ${projects.pipelineState} = 'paused' then 'paused'
  when ${anyStage(sql`s.status in ('failed', 'interrupted')`)} then 'failed'
  when ${anyStage(sql`${isDoneStage} and s.position = (select max(l.position) from ${projectStages} l where l.project_id = ${projects.id})`)} then 'completed'
  else 'draft'
end`;

/** The project's status re-derived from its stages, written only when it changed (on any connection, a transaction's too). */
export const settleProjectStatus = fixedStatement('project_settle_status', (db) =>
  db
    .update(projects)
    .set({ status: derivedStatus, updatedAt: given(projects.updatedAt, 'now') })
    .where(and(eq(projects.id, sql.placeholder('projectId')), ne(projects.status, derivedStatus))),
);

/**
 * Reads every run start and every event stream makes, built once: drizzle's query building is a good
 * part of what a start costs, and a built query is only bound to new values.
 */
const hotQueries = (db: Db) => ({
  withRole: withRole(db, 'project_with_role'),
  stages: stagesInOrder(db, 'project_stages'),
  ownerAndRole: ownerAndRole(db, 'project_owner_and_role'),
  // The project, the user's membership and the active run ride on the first stage's row only (every
  // project has all its stages from its creation on), and a stage's output comes only when it is read.
  forRun: db
    .select({
      stage: stageColumns,
      output: sql`case when ${projectStages.stageType} = any(${sql.placeholder('reads')}::text[]) then ${projectStages.output} end`.mapWith(projectStages.output),
      project: projects,
      role: projectMembers.role,
      activeRunId: stageRuns.id,
    })
    .from(projectStages)
    .leftJoin(projects, and(eq(projects.id, projectStages.projectId), eq(projectStages.position, 0)))
    .leftJoin(projectMembers, and(eq(projectMembers.projectId, projects.id), eq(projectMembers.userId, sql.placeholder('userId'))))
    .leftJoin(stageRuns, and(eq(stageRuns.projectId, projects.id), eq(stageRuns.stage, sql.placeholder('stage')), isActiveRun))
    .where(eq(projectStages.projectId, sql.placeholder('projectId')))
    .orderBy(projectStages.position)
    .prepare('project_for_run'),
  byId: db.select().from(projects).where(eq(projects.id, sql.placeholder('id'))).prepare('project_by_id'),
  statusOf: db
    .select({
      status: projects.status,
      pipelineState: projects.pipelineState,
      stage: {
        stageType: projectStages.stageType,
        status: projectStages.status,
        stale: projectStages.stale,
        staleShotIds: projectStages.staleShotIds,
        statusReason: projectStages.statusReason,
        currentRunId: projectStages.currentRunId,
      },
    })
    .from(projects)
    .innerJoin(projectStages, eq(projectStages.projectId, projects.id))
    .where(eq(projects.id, sql.placeholder('projectId')))
    .orderBy(projectStages.position)
    .prepare('project_status_of'),
});

/** A project and the user's membership in it. */
function withRole(db: Db, name: string) {
  return db
    .select({ project: projects, role: projectMembers.role })
    .from(projects)
    .leftJoin(projectMembers, and(eq(projectMembers.projectId, projects.id), eq(projectMembers.userId, sql.placeholder('userId'))))
    .where(eq(projects.id, sql.placeholder('projectId')))
    .prepare(name);
}

/** Who owns a project and the user's membership in it: what an access check reads. */
function ownerAndRole(db: Db, name: string) {
  return db
    .select({ ownerId: projects.ownerId, role: projectMembers.role })
    .from(projects)
    .leftJoin(projectMembers, and(eq(projectMembers.projectId, projects.id), eq(projectMembers.userId, sql.placeholder('userId'))))
    .where(eq(projects.id, sql.placeholder('projectId')))
    .prepare(name);
}

/** A project's stages in order. */
function stagesInOrder(db: Db, name: string) {
  return db.select().from(projectStages).where(eq(projectStages.projectId, sql.placeholder('projectId'))).orderBy(projectStages.position).prepare(name);
}

/**
 * What a project's page opens with (Database.readDb): the project with the user's membership, its
 * stages in order, and the access check of every read its panels make.
 */
const pageQueries = (db: Db) => ({
  withRole: withRole(db, 'project_page_with_role'),
  stages: stagesInOrder(db, 'project_page_stages'),
  ownerAndRole: ownerAndRole(db, 'project_page_owner_and_role'),
});

/**
 * The project list's page and its count, built once each for a list with a search and one without
 * (the studio's home lists projects at every visit; drizzle's building was a third of what one cost).
 */
function projectList(db: Db, searched: boolean) {
  const userId = sql.placeholder('userId');
  const memberOf = db.select({ id: projectMembers.projectId }).from(projectMembers).where(eq(projectMembers.userId, userId));
  // A search matches the name or the topic, as the search box says.
  const pattern = sql.placeholder('pattern');
  const where = and(or(eq(projects.ownerId, userId), inArray(projects.id, memberOf)), searched ? or(ilike(projects.name, pattern), ilike(projects.originalTopic, pattern)) : undefined);
  // The same rules as isDone and stale_stages in the service: skipped or out-of-date stages are not done.
  const done = sql<number>`(select count(*)::int from ${projectStages} s where s.project_id = ${projects.id} and ${isDoneStage})`;
  const stale = sql<StageKey[]>`(select coalesce(json_agg(s.stage_type order by s.position), '[]'::json) from ${projectStages} s where s.project_id = ${projects.id} and (s.stale or jsonb_array_length(s.stale_shot_ids) > 0))`;
  const name = searched ? 'projects_searched' : 'projects_all';
  return {
    page: db
      .select({ project: projects, role: projectMembers.role, done, stale })
      .from(projects)
      .leftJoin(projectMembers, and(eq(projectMembers.projectId, projects.id), eq(projectMembers.userId, userId)))
      .where(where)
      .orderBy(desc(projects.updatedAt), desc(projects.id))
      .limit(sql.placeholder('limit'))
      .offset(sql.placeholder('offset'))
      .prepare(`${name}_page`),
    count: db.select({ n: count() }).from(projects).where(where).prepare(`${name}_count`),
  };
}

export class ProjectRepository {
  private readonly hot: ReturnType<typeof hotQueries>;
  private readonly lists: { all: ReturnType<typeof projectList>; searched: ReturnType<typeof projectList> };
  private readonly page: ReturnType<typeof pageQueries>;

  /** `readDb`: where the project list and a project's page are read (Database.readDb). */
  constructor(private readonly db: Db, readDb: Db = db) {
    this.hot = hotQueries(db);
    this.lists = { all: projectList(readDb, false), searched: projectList(readDb, true) };
    this.page = pageQueries(readDb);
  }

  /** A project and the stage records of every stage, in one transaction: never half-created. */
  async create(values: typeof projects.$inferInsert) {
    return this.db.transaction(async (tx) => {
      const [project] = await tx.insert(projects).values(values).returning();
      const stages = await tx
        .insert(projectStages)
        .values(STAGE_KEYS.map((stageType, position) => ({ projectId: project.id, stageType, position })))
        .returning();
      return { project, stages };
    });
  }

  /** Projects the user owns or is a member of, newest activity first. */
  async listVisible(userId: string, page: number, pageSize: number, search?: string) {
    const list = search ? this.lists.searched : this.lists.all;
    const values = { userId, pattern: search ? containing(search) : undefined, limit: pageSize, offset: (page - 1) * pageSize };
    const [rows, [{ n }]] = await Promise.all([list.page.execute(values), list.count.execute(values)]);
    return { count: n, rows };
  }

  /** A project's page: the project with the user's membership and its stages, read at once (the stages go out only once access is granted). */
  async forPage(projectId: string, userId: string) {
    const [[row], stages] = await Promise.all([this.page.withRole.execute({ projectId, userId }), this.page.stages.execute({ projectId })]);
    return { row, stages };
  }

  async findWithRole(projectId: string, userId: string) {
    const [row] = await this.hot.withRole.execute({ projectId, userId });
    return row;
  }

  /** `findWithRole` read first in line (Database.readDb), for a check before reads a person waits on. */
  async findWithRoleToView(projectId: string, userId: string) {
    const [row] = await this.page.withRole.execute({ projectId, userId });
    return row;
  }

  /** Who owns the project and the user's membership in it, nothing else: what every open stream re-checks at each change. */
  async ownerAndRole(projectId: string, userId: string) {
    const [row] = await this.hot.ownerAndRole.execute({ projectId, userId });
    return row;
  }

  /** `ownerAndRole` read first in line (Database.readDb), for a check before reads a person waits on. */
  async ownerAndRoleToView(projectId: string, userId: string) {
    const [row] = await this.page.ownerAndRole.execute({ projectId, userId });
    return row;
  }

  /**
   * What a run start needs, in one query: the project with the user's membership, its stages in order
   * with the outputs of those in `reads` (the stage's own `reads`), and the id of the stage's active run
   * if there is one (a partial unique index allows at most one).
   */
  async findForRun(projectId: string, userId: string, stage: StageKey, reads: readonly StageKey[]) {
    const rows = await this.hot.forRun.execute({ projectId, userId, stage, reads });
    const first = rows[0];
    if (!first?.project) return undefined;
    const stages = rows.map(({ stage: row, output }) => (reads.includes(row.stageType as StageKey) ? Object.assign(row, { output }) : unread(row, stage)));
    return { project: first.project, role: first.role, activeRunId: first.activeRunId, stages };
  }

  findById = async (id: string) => (await this.hot.byId.execute({ id }))[0];

  /**
   * The project's status and its stages' states in order, without their outputs (a finished project's
   * are tens of kilobytes): what every run's start and ending tells the project's followers. Undefined
   * when the project is gone.
   */
  async statusOf(projectId: string) {
    const rows = await this.hot.statusOf.execute({ projectId });
    if (!rows.length) return undefined;
    return { status: rows[0].status, pipelineState: rows[0].pipelineState, stages: rows.map((r) => r.stage) };
  }

  /** Re-derives the project's status from its stages and stores it if it changed. */
  settleStatus = async (projectId: string) => {
    await settleProjectStatus(this.db, { projectId, now: new Date() });
  };

  update = async (id: string, values: Partial<typeof projects.$inferInsert>) =>
    (await this.db.update(projects).set({ ...values, updatedAt: new Date() }).where(eq(projects.id, id)).returning())[0];

  delete = async (id: string) => {
    await this.db.delete(projects).where(eq(projects.id, id));
  };

  stages = (projectId: string): Promise<StageRow[]> => this.hot.stages.execute({ projectId });

  stage = async (projectId: string, stage: StageKey) =>
    (await this.db.select().from(projectStages).where(and(eq(projectStages.projectId, projectId), eq(projectStages.stageType, stage))))[0];

  updateStage = async (projectId: string, stage: StageKey, values: Partial<typeof projectStages.$inferInsert>) =>
    (
      await this.db
        .update(projectStages)
        .set({ ...values, updatedAt: new Date() })
        .where(and(eq(projectStages.projectId, projectId), eq(projectStages.stageType, stage)))
        .returning()
    )[0];

  // ---- members ----
  members = (projectId: string) =>
    this.db
      .select({ user_id: users.id, email: users.email, name: users.name, role: projectMembers.role })
      .from(projectMembers)
      .innerJoin(users, eq(users.id, projectMembers.userId))
      .where(eq(projectMembers.projectId, projectId))
      .orderBy(users.email);

  upsertMember = async (projectId: string, userId: string, role: 'viewer' | 'editor') => {
    await this.db
      .insert(projectMembers)
      .values({ projectId, userId, role })
      .onConflictDoUpdate({ target: [projectMembers.projectId, projectMembers.userId], set: { role } });
  };

  deleteMember = async (projectId: string, userId: string) =>
    (
      await this.db
        .delete(projectMembers)
        .where(and(eq(projectMembers.projectId, projectId), eq(projectMembers.userId, userId)))
        .returning({ id: projectMembers.userId })
    ).length > 0;

  findUser = async (by: { id?: string; email?: string }) =>
    (await this.db.select().from(users).where(by.id ? eq(users.id, by.id) : eq(users.email, by.email!.toLowerCase())))[0];
}

/** Who read a stage row without its output (see `unread`). */
const READER = Symbol('reader');

/** A stage row without its output, which `reader` did not declare it reads: reading it anyway is a bug, said at once. */
function unread(row: Omit<StageRow, 'output'>, reader: StageKey): StageRow {
  return Object.defineProperties(row, { [READER]: { value: reader }, output: { get: outputNotRead } }) as StageRow;
}

function outputNotRead(this: StageRow & { [READER]: StageKey }): never {
  throw new Error(`The ${this[READER]} stage reads the ${this.stageType} stage's output: add '${this.stageType}' to its \`reads\``);
}
