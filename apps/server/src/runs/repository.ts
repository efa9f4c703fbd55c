import { randomUUID } from 'node:crypto';
import { MEDIA_STAGES, type StageKey } from '@ai-story/contracts';
import { and, asc, count, desc, eq, getTableColumns, gt, inArray, isNull, ne, notInArray, or, sql } from 'drizzle-orm';
import { commitBehind, type Db } from '../db/client.ts';
import { fixedStatement, given, placeholders } from '../db/fixed-statement.ts';
import { instances, isActiveRun, projectMembers, projects, projectStages, runItems, runTextChunks, stageRuns, type ProjectRow, type RunRow, type StageRow } from '../db/schema.ts';
import { hasOutput } from '../projects/repository.ts';
import { deriveStatus } from '../projects/service.ts';
import { REASONS } from '../projects/status-reasons.ts';
import { StoryboardRepository } from '../storyboard/repository.ts';
import type { StageStore } from '../stages/definition.ts';

type RunError = { message: string; code: string; retryable: boolean };

/** Thrown inside an ending's transaction to undo it: the run is no longer active (another studio recovered it). */
class NotActive extends Error {}

const START_COLUMNS = ['id', 'projectId', 'stage', 'status', 'input', 'prompt', 'providerId', 'providerName', 'model', 'isSimulated', 'createdBy', 'startedAt', 'ownerInstanceId'] as const;
/** What a run is started with (its id is made here); the rest of its row is the table's defaults. */
type StartValues = Required<Pick<typeof stageRuns.$inferInsert, Exclude<(typeof START_COLUMNS)[number], 'id' | 'stage'>>> & { stage: StageKey };
const value = sql.placeholder;

/**
 * A run's columns but those a start or an ending sends, which only it can hold large: the input and
 * the prompt (the user's text, each), the text and the output (the model's). Read back, they would
 * come over the wire and be parsed once more at every start and every ending; the database's own
 * values (its defaults, a provider a failover wrote) still come from it.
 */
const { input: _input, prompt: _prompt, text: _text, output: _output, ...RUN_WITHOUT_TEXTS } = getTableColumns(stageRuns);

/**
 * What an ending reads back of each stage: its state, and of its output only whether there is one
 * (`output` is true or null: the status rule's `output != null`, JSON null included). The outputs
 * themselves, a finished project's storyboard, narration and clips, are tens of kilobytes that every
 * run's ending would fetch and parse for nothing.
 */
const STAGE_STATE = {
  id: projectStages.id,
  stageType: projectStages.stageType,
  position: projectStages.position,
  status: projectStages.status,
  stale: projectStages.stale,
  staleShotIds: projectStages.staleShotIds,
  output: sql<true | null>`case when ${hasOutput(projectStages.output)} then true end`.as('has_output'),
};
type StageState = Pick<StageRow, 'id' | 'stageType' | 'position' | 'status' | 'stale' | 'staleShotIds'> & { output: true | null };

/**
 * The statements every run's start and ending make, built once (db/fixed-statement.ts) and run on the
 * transaction's connection: drizzle would build each anew, at more CPU than the database spends on it.
 */
const lifecycle = {
  projectProcessing: fixedStatement('run_start_project', (db) =>
    db
      .update(projects)
      .set({ status: 'processing', updatedAt: given(projects.updatedAt, 'now') })
      .where(and(eq(projects.id, value('projectId')), ne(projects.status, 'processing'))),
  ),
  insertRun: fixedStatement('run_start_insert', (db) =>
    db
      .insert(stageRuns)
      .values(placeholders(START_COLUMNS))
      .returning(RUN_WITHOUT_TEXTS),
  ),
  stageRunning: fixedStatement('run_start_stage', (db) =>
    db
      .update(projectStages)
      .set({ status: 'running', currentRunId: given(projectStages.currentRunId, 'runId'), statusReason: null, updatedAt: given(projectStages.updatedAt, 'now') })
      .where(and(eq(projectStages.projectId, value('projectId')), eq(projectStages.stageType, value('stage')))),
  ),
  lockProject: fixedStatement('project_lock', (db) =>
    db
      .select({ id: projects.id, status: projects.status, pipelineState: projects.pipelineState })
      .from(projects)
      .where(eq(projects.id, value('projectId')))
      .for('no key update'),
  ),
  stagesOf: fixedStatement('project_stages_in_order', (db) =>
    db.select(STAGE_STATE).from(projectStages).where(eq(projectStages.projectId, value('projectId'))).orderBy(projectStages.position),
  ),
  projectStatus: fixedStatement('project_status', (db) =>
    db
      .update(projects)
      .set({ status: given(projects.status, 'status'), updatedAt: given(projects.updatedAt, 'now') })
      .where(eq(projects.id, value('projectId'))),
  ),
  completeRun: fixedStatement('run_complete', (db) =>
    db
      .update(stageRuns)
      .set({
        status: 'completed',
        text: given(stageRuns.text, 'text'),
        output: given(stageRuns.output, 'output'),
        usage: given(stageRuns.usage, 'usage'),
        finishedAt: given(stageRuns.finishedAt, 'now'),
        lastEventId: given(stageRuns.lastEventId, 'lastEventId'),
      })
      .where(and(eq(stageRuns.id, value('runId')), isActiveRun))
      .returning(RUN_WITHOUT_TEXTS),
  ),
  stageCompleted: fixedStatement('run_complete_stage', (db) =>
    db
      .update(projectStages)
      .set({
        status: 'completed',
        output: given(projectStages.output, 'output'),
        currentRunId: given(projectStages.currentRunId, 'runId'),
        stale: false,
        staleShotIds: [],
        statusReason: null,
        updatedAt: given(projectStages.updatedAt, 'now'),
      })
      .where(and(eq(projectStages.projectId, value('projectId')), eq(projectStages.stageType, value('stage')))),
  ),
  endRun: fixedStatement('run_end', (db) =>
    db
      .update(stageRuns)
      .set({
        status: given(stageRuns.status, 'status'),
        text: given(stageRuns.text, 'text'),
        error: given(stageRuns.error, 'error'),
        finishedAt: given(stageRuns.finishedAt, 'now'),
        lastEventId: given(stageRuns.lastEventId, 'lastEventId'),
      })
      .where(and(eq(stageRuns.id, value('runId')), isActiveRun))
      .returning({ id: stageRuns.id }),
  ),
  stageEnded: fixedStatement('run_end_stage', (db) =>
    db
      .update(projectStages)
      .set({ status: given(projectStages.status, 'status'), statusReason: given(projectStages.statusReason, 'reason'), updatedAt: given(projectStages.updatedAt, 'now') })
      .where(and(eq(projectStages.projectId, value('projectId')), eq(projectStages.stageType, value('stage')), eq(projectStages.currentRunId, value('runId')))),
  ),
  deleteChunks: fixedStatement('run_chunks_delete', (db) => db.delete(runTextChunks).where(eq(runTextChunks.runId, value('runId')))),
  /**
   * Every live run's checkpoint in one statement of one shape, however many runs there are: the
   * columns travel as four arrays. Rows as a VALUES list would make a new statement for each count of
   * runs, with four parameters a run for drizzle to build and PostgreSQL to parse, once a second.
   */
  appendChunks: fixedStatement('run_chunks_append', (db) =>
    db
      .insert(runTextChunks)
      .select(
        sql`select * from unnest(${sql.placeholder('runIds')}::uuid[], ${sql.placeholder('seqs')}::int[], ${sql.placeholder('offsets')}::int[], ${sql.placeholder('texts')}::text[])`,
      ),
  ),
};

/** A project's runs in progress. */
const activeOfProject = (db: Db, name: string) => db.select().from(stageRuns).where(and(eq(stageRuns.projectId, value('projectId')), isActiveRun)).prepare(name);

/** Built once: drizzle's query building costs more than these lookups, which every event stream makes. */
const hotQueries = (db: Db) => ({
  byId: db.select().from(stageRuns).where(eq(stageRuns.id, value('id'))).prepare('run_by_id'),
  activeOfProject: activeOfProject(db, 'runs_active_of_project'),
  withAccess: db
    .select({ run: stageRuns, project: projects, role: projectMembers.role })
    .from(stageRuns)
    .innerJoin(projects, eq(projects.id, stageRuns.projectId))
    .leftJoin(projectMembers, and(eq(projectMembers.projectId, projects.id), eq(projectMembers.userId, value('userId'))))
    .where(eq(stageRuns.id, value('id')))
    .prepare('run_with_access'),
});

export class RunRepository {
  private readonly hot: ReturnType<typeof hotQueries>;
  /** Every project stream opens with it, first in line (Database.readDb). */
  private readonly activeToFollow: ReturnType<typeof activeOfProject>;

  /** `readDb`: where a project's page reads its runs (Database.readDb). */
  constructor(
    readonly db: Db,
    private readonly readDb: Db = db,
  ) {
    this.hot = hotQueries(db);
    this.activeToFollow = activeOfProject(readDb, 'runs_active_to_follow');
  }

  /**
   * Inserts a running run and makes it its stage's current run, in one transaction; the partial unique
   * index refuses a second active run of the same stage. A running stage makes the project
   * `processing` whatever its other stages say (deriveStatus), so the status is set, not derived.
   */
  async insertActive(values: StartValues): Promise<RunRow | 'conflict'> {
    // The id is made here, so the stage can point at the run in the same round trip as its insert.
    const id = randomUUID();
    const now = new Date();
    try {
      return await this.db.transaction(async (tx) =>
        // Sent together with the COMMIT, run in this order: the project row first, since a finish holds
        // it while it reads the stages (lock order project, then stage). A refused insert fails the
        // update after it, and the transaction with it.
        commitBehind(
          Promise.all([
            lifecycle.projectProcessing(tx, { projectId: values.projectId, now }),
            lifecycle.insertRun(tx, { ...values, id }),
            lifecycle.stageRunning(tx, { projectId: values.projectId, stage: values.stage, runId: id, now }),
          ]).then(([, [row]]): RunRow => ({ ...row, input: values.input, prompt: values.prompt, text: '', output: null })),
        ),
      );
    } catch (err) {
      if (isUniqueViolation(err)) return 'conflict';
      throw err;
    }
  }

  /** A worker makes a queued run its own; undefined when it is no longer queued (cancelled, or already taken). */
  claimQueued = async (id: string, ownerInstanceId: string): Promise<RunRow | undefined> =>
    (
      await this.db
        .update(stageRuns)
        .set({ status: 'running', ownerInstanceId, startedAt: new Date() })
        .where(and(eq(stageRuns.id, id), eq(stageRuns.status, 'queued')))
        .returning()
    )[0];

  /** A queued run nobody has taken yet is cancelled where it waits; false when a worker took it first. */
  cancelQueued = (run: { id: string; projectId: string }): Promise<boolean> =>
    this.db.transaction(async (tx) => {
      const project = await lockProject(tx, run.projectId);
      const ended = await tx
        .update(stageRuns)
        .set({ status: 'cancelled', finishedAt: new Date() })
        .where(and(eq(stageRuns.id, run.id), eq(stageRuns.status, 'queued')))
        .returning({ id: stageRuns.id });
      if (!ended.length) return false;
      await tx
        .update(projectStages)
        .set({ status: 'cancelled', statusReason: REASONS.stopped_by_user, updatedAt: new Date() })
        .where(and(eq(projectStages.projectId, run.projectId), eq(projectStages.currentRunId, run.id)));
      if (project) await settleStatus(tx, project, await stagesOf(tx, run.projectId));
      return true;
    });

  insert = async (values: typeof stageRuns.$inferInsert) => (await this.db.insert(stageRuns).values(values).returning())[0];
  find = async (id: string) => (await this.hot.byId.execute({ id }))[0];
  /** A run with its project and the user's membership in it: what an access check needs, in one read. */
  findWithAccess = async (id: string, userId: string) => (await this.hot.withAccess.execute({ id, userId }))[0];
  findActive = async (projectId: string, stage: StageKey) =>
    (await this.db.select().from(stageRuns).where(and(eq(stageRuns.projectId, projectId), eq(stageRuns.stage, stage), isActiveRun)))[0];
  activeOfProject = (projectId: string) => this.hot.activeOfProject.execute({ projectId });
  /** `activeOfProject` for a project stream's opening, read first in line. */
  activeOfProjectToFollow = (projectId: string) => this.activeToFollow.execute({ projectId });

  update = async (id: string, values: Partial<typeof stageRuns.$inferInsert>) => {
    await this.db.update(stageRuns).set(values).where(eq(stageRuns.id, id));
  };

  /** One statement for many runs' checkpoints: each appends only its new text. */
  async appendChunks(chunks: { runId: string; seq: number; offset: number; text: string }[]) {
    await lifecycle.appendChunks(this.db, {
      runIds: chunks.map((c) => c.runId),
      seqs: chunks.map((c) => c.seq),
      offsets: chunks.map((c) => c.offset),
      texts: chunks.map((c) => c.text),
    });
  }

  /** The text a run had checkpointed, rebuilt from its chunks. */
  async checkpointedText(tx: Db, runId: string): Promise<string | null> {
    const chunks = await tx.select().from(runTextChunks).where(eq(runTextChunks.runId, runId)).orderBy(asc(runTextChunks.seq));
    if (!chunks.length) return null;
    return chunks.reduce((text, c) => text.slice(0, c.offset) + c.text, '');
  }

  deleteChunks = async (tx: Db, runId: string) => {
    await lifecycle.deleteChunks(tx, { runId });
  };

  /** A page of a stage's runs, newest first: what its history panel shows, read first in line. */
  async history(projectId: string, stage: StageKey, page: number, pageSize: number) {
    const where = and(eq(stageRuns.projectId, projectId), eq(stageRuns.stage, stage));
    const [rows, [{ n }]] = await Promise.all([
      this.readDb.select().from(stageRuns).where(where).orderBy(desc(stageRuns.createdAt), desc(stageRuns.id)).limit(pageSize).offset((page - 1) * pageSize),
      this.readDb.select({ n: count() }).from(stageRuns).where(where),
    ]);
    return { count: n, rows };
  }

  /** One finished item of a media run, saved as it finishes (DESIGN §9). */
  saveItem = async (values: typeof runItems.$inferInsert) => {
    await this.db.insert(runItems).values(values);
  };
  items = (runId: string) => this.db.select().from(runItems).where(eq(runItems.runId, runId)).orderBy(asc(runItems.seq));

  /** The newest item a stage made in this project under `cacheKey` (its hash of inputs), in any earlier run. */
  async itemByCacheKey(projectId: string, stage: StageKey, cacheKey: string): Promise<Record<string, unknown> | null> {
    const [row] = await this.db
      .select({ item: runItems.item })
      .from(runItems)
      .innerJoin(stageRuns, eq(stageRuns.id, runItems.runId))
      .where(and(eq(stageRuns.projectId, projectId), eq(stageRuns.stage, stage), sql`${runItems.item}->>'cache_key' = ${cacheKey}`))
      .orderBy(desc(runItems.createdAt))
      .limit(1);
    return (row?.item as Record<string, unknown> | undefined) ?? null;
  }

  /**
   * A run's successful end, in one transaction: the stage persists its output, the run keeps its
   * text and output, the stage points at it, the completed stages after it become stale, and the
   * project's status follows. `checkpointed`: whether the run saved checkpoints to fold away.
   * Null, with nothing written, when the run is no longer active (another studio recovered it).
   */
  completeRun = async (
    run: { id: string; projectId: string; stage: StageKey; checkpointed: boolean },
    values: { text: string; usage: unknown; lastEventId: number },
    persist: (store: StageStore) => Promise<unknown>,
  ): Promise<(Ending & { row: Omit<RunRow, 'input' | 'prompt'> }) | null> => {
    try {
      return await this.db.transaction(async (tx) => {
        const { settling, row, output, pipeline } = await makeCurrent(tx, { ...run, runId: run.id }, persist, (output, now) =>
          lifecycle.completeRun(tx, { runId: run.id, text: values.text, output, usage: values.usage, now, lastEventId: values.lastEventId }),
        );
        const ending = { pipeline, row: { ...row, text: values.text, output } };
        return commitBehind(Promise.all([settling, run.checkpointed && this.deleteChunks(tx, run.id)]).then(() => ending));
      });
    } catch (err) {
      if (err instanceof NotActive) return null;
      throw err;
    }
  };

  /**
   * A run that failed or was stopped: its text is kept, the stage says why (if the run is still its
   * current one). Null, with nothing written, when the run is no longer active.
   */
  endRun = async (
    run: { id: string; projectId: string; stage: StageKey; checkpointed: boolean },
    values: { status: 'failed' | 'cancelled' | 'interrupted'; text: string; error?: RunError; reason: string; lastEventId: number },
  ): Promise<Ending | null> => {
    try {
      return await this.db.transaction(async (tx) => {
        const now = new Date();
        // Sent together, run in this order (the lock order: project, run, stage); undone if the run was no longer active.
        // An active run has no error yet: one not given stays none.
        const [project, ended, , stages] = await Promise.all([
          lockingProject(tx, run.projectId),
          lifecycle.endRun(tx, { runId: run.id, status: values.status, text: values.text, error: values.error ?? null, now, lastEventId: values.lastEventId }),
          lifecycle.stageEnded(tx, { projectId: run.projectId, stage: run.stage, runId: run.id, status: values.status, reason: values.reason, now }),
          stagesOf(tx, run.projectId),
        ]);
        if (!ended.length) throw new NotActive();
        const last = [run.checkpointed && this.deleteChunks(tx, run.id), project && settleStatus(tx, project, stages)];
        return commitBehind(Promise.all(last).then(() => ({ pipeline: project?.pipelineState })));
      });
    } catch (err) {
      if (err instanceof NotActive) return null;
      throw err;
    }
  };

  /** A new version from a hand edit or a restore: a completed run of its own, made current. */
  saveVersion = (
    values: { projectId: string; stage: StageKey; source: 'edit' | 'restore'; text: string; createdBy: string },
    persist: (store: StageStore) => Promise<unknown>,
  ) => {
    const runId = randomUUID();
    return this.db.transaction(async (tx) => {
      const { row, settling } = await makeCurrent(tx, { ...values, runId }, persist, (output, now) =>
        tx
          .insert(stageRuns)
          .values({ ...values, id: runId, status: 'completed', input: {}, output, startedAt: now, finishedAt: now })
          .returning(),
      );
      return commitBehind(settling.then(() => row));
    });
  };

  /**
   * After a crash: active runs whose owner holds no live lease (it is gone: crashed, stopped, or its
   * lease expired and was taken over) become `interrupted`, their partial text kept. Runs from before
   * owners were recorded have none, and count as orphans.
   */
  async interruptOrphans(): Promise<{ id: string; projectId: string; stage: string }[]> {
    return this.db.transaction(async (tx) => {
      const liveOwners = tx.select({ id: instances.id }).from(instances).where(gt(instances.expiresAt, sql`now()`));
      const orphans = await tx
        .update(stageRuns)
        .set({ status: 'interrupted', finishedAt: new Date(), error: { message: 'The server stopped while this run was in progress', code: 'interrupted', retryable: true } })
        // A queued run has no owner until a worker takes it: it is waiting, not orphaned.
        .where(and(isActiveRun, or(and(isNull(stageRuns.ownerInstanceId), eq(stageRuns.status, 'running')), notInArray(stageRuns.ownerInstanceId, liveOwners))))
        .returning({ id: stageRuns.id, projectId: stageRuns.projectId, stage: stageRuns.stage, text: stageRuns.text });
      for (const orphan of orphans) {
        const text = await this.checkpointedText(tx, orphan.id);
        if (text !== null) await tx.update(stageRuns).set({ text }).where(eq(stageRuns.id, orphan.id));
        await this.deleteChunks(tx, orphan.id);
      }
      if (orphans.length) {
        await tx
          .update(projectStages)
          .set({ status: 'interrupted', statusReason: REASONS.server_stopped, updatedAt: new Date() })
          .where(and(inArray(projectStages.currentRunId, orphans.map((o) => o.id)), eq(projectStages.status, 'running')));
      }
      return orphans;
    });
  }
}

/**
 * Inside a transaction: the stage persists its output through its repositories, `save` writes the run
 * that carries it, and the stage is completed with it (what follows it becoming out of date). The run,
 * its stage and the stages read back leave together, run in this order (the lock order: project, run,
 * stage); a run `save` no longer finds active undoes it all. `settling`, the project's status, is the
 * last write, sent but not awaited: the caller's COMMIT can follow it at once (commitBehind).
 */
async function makeCurrent<Saved>(
  tx: Db,
  run: { projectId: string; stage: StageKey; runId: string },
  persist: (store: StageStore) => Promise<unknown>,
  save: (output: unknown, now: Date) => Promise<Saved[]>,
) {
  const locked = lockingProject(tx, run.projectId);
  const store = { storyboards: new StoryboardRepository(tx) };
  const output = await persist(store);
  const now = new Date();
  const [project, [row], , stages] = await Promise.all([
    locked,
    save(output, now),
    lifecycle.stageCompleted(tx, { projectId: run.projectId, stage: run.stage, output, runId: run.runId, now }),
    stagesOf(tx, run.projectId),
  ]);
  if (!row) throw new NotActive();
  await markLaterOutOfDate(tx, stages, run.stage, store.storyboards.changedShotIds);
  const settling = project ? settleStatus(tx, project, stages) : Promise.resolve();
  return { row, output, pipeline: project?.pipelineState, settling };
}

/** What `projects.pipeline_state` holds (the schema's enum is the one list). */
export type PipelineState = ProjectRow['pipelineState'];
type ProjectState = { id: string; status: string; pipelineState: PipelineState };

/** A saved ending: the project's pipeline state it saw under the project's lock (the pipeline needs no read of its own when it was idle). */
type Ending = { pipeline: PipelineState | undefined };

/**
 * The project's row, locked until the transaction ends: two runs of one project ending at once
 * derive its status one after the other, each from what the other saved.
 */
async function lockProject(tx: Db, projectId: string): Promise<ProjectState | undefined> {
  return (await lifecycle.lockProject(tx, { projectId }))[0];
}

/**
 * The project's lock, its answer not waited for: the statements that follow on the transaction's
 * connection go out behind it (PostgreSQL runs them in order, so under the lock), one round trip
 * sooner. Its answer, the project, is awaited where it is used; a lock that fails fails them too.
 */
function lockingProject(tx: Db, projectId: string): Promise<ProjectState | undefined> {
  const locked = lockProject(tx, projectId);
  locked.catch(() => {}); // awaited later, after the statements behind it: not an unhandled rejection meanwhile
  return locked;
}

const stagesOf = (tx: Db, projectId: string): Promise<StageState[]> => lifecycle.stagesOf(tx, { projectId });

/** The project's status re-derived from its stages (DESIGN §1), written only when it changed. */
function settleStatus(tx: Db, project: ProjectState, stages: StageState[]): Promise<unknown> {
  const status = deriveStatus(stages, project.pipelineState);
  return status !== project.status ? lifecycle.projectStatus(tx, { projectId: project.id, status, now: new Date() }) : Promise.resolve();
}

/**
 * What follows from a stage's new output (`stages` as read back after it was saved): when the change is
 * known per shot (a storyboard saved in place, shots retimed by their narration), the stages that
 * depend on it per shot get those shots in `stale_shot_ids` and redo only them; otherwise every
 * completed stage after it becomes stale.
 */
async function markLaterOutOfDate(tx: Db, stages: StageState[], stage: StageKey, changedShotIds: Set<string>) {
  const position = stages.find((s) => s.stageType === stage)!.position;
  const perShot = PER_SHOT_DEPENDENTS[stage] ?? [];
  const wholeStale: string[] = [];
  for (const later of stages.filter((s) => s.position > position && s.status === 'completed')) {
    if (perShot.includes(later.stageType as StageKey)) {
      if (!changedShotIds.size) continue;
      later.staleShotIds = [...new Set([...(later.staleShotIds ?? []), ...changedShotIds])];
      await tx.update(projectStages).set({ staleShotIds: later.staleShotIds, updatedAt: new Date() }).where(eq(projectStages.id, later.id));
    } else {
      later.stale = true;
      wholeStale.push(later.id);
    }
  }
  if (wholeStale.length) await tx.update(projectStages).set({ stale: true, updatedAt: new Date() }).where(inArray(projectStages.id, wholeStale));
}

/**
 * Later stages that a stage's save makes out of date shot by shot (the others become stale as a
 * whole): a storyboard save changes shots' content, which every media stage redoes per shot; a
 * narration save changes shots' lengths, which only their clips depend on (the export mixes the
 * narration itself, so it is stale whenever the narration changes).
 */
const PER_SHOT_DEPENDENTS: Partial<Record<StageKey, readonly StageKey[]>> = { storyboard: MEDIA_STAGES, narration: ['video'] };

function isUniqueViolation(err: unknown): boolean {
  for (let e: any = err; e; e = e.cause) if (e.code === '23505') return true;
  return false;
}
