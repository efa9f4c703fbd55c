import { randomUUID } from 'node:crypto';
import { MEDIA_STAGES, type StageKey } from '@ai-story/contracts';
import { and, asc, count, desc, eq, getTableColumns, gt, inArray, isNull, ne, not, notInArray, or, sql } from 'drizzle-orm';
import type { Database, Db } from '../db/client.ts';
import { fixedStatement, given, placeholders } from '../db/fixed-statement.ts';
import { inOneTransaction, TransactionGroup } from '../db/transaction-group.ts';
import { instances, isActiveRun, projectMembers, projects, projectStages, runItems, runTextChunks, stageRuns, type ProjectRow, type RunRow } from '../db/schema.ts';
import { settleProjectStatus } from '../projects/repository.ts';
import { REASONS } from '../projects/status-reasons.ts';
import { StoryboardRepository } from '../storyboard/repository.ts';
import type { StageStore } from '../stages/definition.ts';

type RunError = { message: string; code: string; retryable: boolean };

/** Thrown inside an ending's transaction to undo it: the run is no longer active (another studio recovered it). */
class NotActive extends Error {}
/** completeRun's answer for an `alongside` it was not given. */
const NOTHING_ALONGSIDE: PromiseSettledResult<unknown> = { status: 'fulfilled', value: undefined };

const START_COLUMNS = ['id', 'projectId', 'stage', 'status', 'input', 'prompt', 'providerId', 'providerName', 'model', 'isSimulated', 'createdBy', 'startedAt', 'ownerInstanceId'] as const;
/** What a hand edit's or a restore's version is saved with: a completed run of its own. */
const VERSION_COLUMNS = ['id', 'projectId', 'stage', 'source', 'status', 'text', 'input', 'output', 'createdBy', 'startedAt', 'finishedAt'] as const;
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

/** In a statement whose CTE `run` saves a run: whether it did (the run was still active). */
const runSaved = sql`exists (select from ${sql.identifier('run')})`;

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
      .select({ pipelineState: projects.pipelineState })
      .from(projects)
      .where(eq(projects.id, value('projectId')))
      .for('no key update'),
  ),
  /**
   * A run's successful ending, in one statement: the run completed (if it is still active), and only
   * then its stage made current with its output (completedStage). Answers the run, or nothing when it
   * was no longer active.
   */
  complete: fixedStatement('run_complete', (db) => {
    const run = db.$with('run').as(
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
    );
    return db.with(run, ...completedStage(db)).select().from(run);
  }),
  /** A new version from a hand edit or a restore, in one statement: a completed run of its own, made current as an ending's is. */
  version: fixedStatement('run_version', (db) => {
    const run = db.$with('run').as(db.insert(stageRuns).values(placeholders(VERSION_COLUMNS)).returning());
    return db.with(run, ...completedStage(db)).select().from(run);
  }),
  /**
   * A run that failed or was stopped, in one statement: the run ended with its text (if it is still
   * active), and only then its stage says why, if the run is still its current one. Answers the run's
   * id, or nothing when it was no longer active.
   */
  end: fixedStatement('run_end', (db) => {
    const run = db.$with('run').as(
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
    );
    const stage = db.$with('stage').as(
      db
        .update(projectStages)
        .set({ status: given(projectStages.status, 'status'), statusReason: given(projectStages.statusReason, 'reason'), updatedAt: given(projectStages.updatedAt, 'now') })
        .where(
          and(
            eq(projectStages.projectId, value('projectId')),
            eq(projectStages.stageType, value('stage')),
            eq(projectStages.currentRunId, value('runId')),
            runSaved,
          ),
        )
        .returning({ id: projectStages.id }),
    );
    return db.with(run, stage).select().from(run);
  }),
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
  /**
   * Run starts and endings: those that come while others are being saved share a transaction
   * (db/transaction-group.ts). At 200 streams they come in bursts of hundreds a second, and each
   * transaction of its own woke a database process, began and committed for one run.
   */
  private readonly writes: TransactionGroup;

  /**
   * `readDb`: where a project's page reads its runs (Database.readDb). `kind`: the database's; on PGlite
   * a shared transaction holds the one session, and the project list waits for it.
   */
  constructor(
    readonly db: Db,
    private readonly readDb: Db = db,
    kind: Database['kind'] = 'postgres',
  ) {
    this.hot = hotQueries(db);
    this.activeToFollow = activeOfProject(readDb, 'runs_active_to_follow');
    this.writes = new TransactionGroup(db, undefined, kind === 'pglite' ? PGLITE_SHARES : undefined);
  }

  /**
   * Inserts a running run and makes it its stage's current run, in one transaction; the partial unique
   * index refuses a second active run of the same stage. A running stage makes the project
   * `processing` whatever its other stages say (the status rule, settleProjectStatus in the project
   * repository), so the status is set, not derived. 'gone' when the project was deleted since its
   * access was checked.
   */
  async insertActive(values: StartValues): Promise<RunRow | 'conflict' | 'gone'> {
    // The id is made here, so the stage can point at the run in the same round trip as its insert.
    const id = randomUUID();
    const now = new Date();
    try {
      return await this.writes.run({
        projectId: values.projectId,
        // Sent together with the COMMIT, run in this order: the project row first, since a finish holds
        // it while it reads the stages (lock order project, then stage). A refused insert fails the
        // update after it, and the transaction with it.
        send: async (tx) => ({
          checked: false,
          answer: Promise.all([
            lifecycle.projectProcessing(tx, { projectId: values.projectId, now }),
            lifecycle.insertRun(tx, { ...values, id }),
            lifecycle.stageRunning(tx, { projectId: values.projectId, stage: values.stage, runId: id, now }),
          ]).then(([, [row]]): RunRow => ({ ...row, input: values.input, prompt: values.prompt, text: '', output: null })),
        }),
      });
    } catch (err) {
      if (violated(err, UNIQUE_VIOLATION)) return 'conflict';
      if (violated(err, FOREIGN_KEY_VIOLATION, PROJECT_OF_RUN)) return 'gone';
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
      await lockProject(tx, run.projectId);
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
      await settleProjectStatus(tx, { projectId: run.projectId, now: new Date() });
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
   * A run's successful end, in one transaction (shared with the other starts and endings of the
   * moment): the stage persists its output, the run keeps its text and output, the stage points at it,
   * the completed stages after it go out of date, and the project's status follows (makeCurrent).
   * `checkpointed`: whether the run saved checkpoints to fold away. Null, with nothing of the run's
   * written, when the run is no longer active (another studio recovered it).
   *
   * `alongside`: a write of the same moment that is not the run's (its call's usage row). It goes in the
   * same transaction, one round trip fewer, but its failure is its own: the ending is saved without it,
   * and `alongside` answers the failure. Both are answered once both are settled.
   */
  completeRun = async (
    run: { id: string; projectId: string; stage: StageKey; checkpointed: boolean },
    values: { text: string; usage: unknown; lastEventId: number },
    persist: (store: StageStore) => Promise<unknown>,
    alongside?: (tx: Db) => Promise<unknown>,
  ): Promise<{ ending: (Ending & { row: Omit<RunRow, 'input' | 'prompt'> }) | null; alongside: PromiseSettledResult<unknown> }> => {
    const ending = {
      projectId: run.projectId,
      send: (tx: Db) =>
        makeCurrent(
          tx,
          { ...run, runId: run.id },
          persist,
          (current) => lifecycle.complete(tx, { ...current, text: values.text, usage: values.usage, lastEventId: values.lastEventId }),
          () => run.checkpointed && this.deleteChunks(tx, run.id),
        ),
    };
    // No second share without `alongside`: an empty one would still take one of a transaction's places.
    const [completed, written = NOTHING_ALONGSIDE] = await Promise.allSettled(
      alongside
        ? this.writes.runTogether([ending, { projectId: run.projectId, send: async (tx) => ({ answer: alongside(tx), checked: false }) }])
        : [this.writes.run(ending)],
    );
    if (completed.status === 'rejected') {
      if (completed.reason instanceof NotActive) return { ending: null, alongside: written };
      throw completed.reason;
    }
    const made = completed.value;
    return { ending: made && { pipeline: made.pipeline, row: { ...made.row, text: values.text, output: made.output } }, alongside: written };
  };

  /**
   * A run that failed or was stopped: its text is kept, the stage says why (if the run is still its
   * current one), and the project's status follows, in one round trip with the COMMIT (of a transaction
   * shared with the other starts and endings of the moment): the ending's statement changes nothing
   * when the run is no longer active (null then), and the status is re-derived from what is there.
   */
  endRun = (
    run: { id: string; projectId: string; stage: StageKey; checkpointed: boolean },
    values: { status: 'failed' | 'cancelled' | 'interrupted'; text: string; error?: RunError; reason: string; lastEventId: number },
  ): Promise<Ending | null> =>
    this.writes.run({
      projectId: run.projectId,
      send: async (tx) => {
        const now = new Date();
        // Sent together, run in this order: the project's lock first (the lock order: project, run, stage).
        // An active run has no error yet: one not given stays none.
        const ending = Promise.all([
          lockingProject(tx, run.projectId),
          lifecycle.end(tx, { runId: run.id, projectId: run.projectId, stage: run.stage, status: values.status, text: values.text, error: values.error ?? null, reason: values.reason, now, lastEventId: values.lastEventId }),
          settleProjectStatus(tx, { projectId: run.projectId, now }),
          run.checkpointed && this.deleteChunks(tx, run.id),
        ]);
        return { checked: false, answer: ending.then(([project, ended]) => (ended.length ? { pipeline: project?.pipelineState } : null)) };
      },
    });

  /** A new version from a hand edit or a restore: a completed run of its own, made current. */
  saveVersion = async (
    values: { projectId: string; stage: StageKey; source: 'edit' | 'restore'; text: string; createdBy: string },
    persist: (store: StageStore) => Promise<unknown>,
  ) => {
    const runId = randomUUID();
    const [made] = await inOneTransaction(this.db, [
      {
        projectId: values.projectId,
        send: (tx) =>
          makeCurrent(tx, { ...values, runId }, persist, (current) =>
            lifecycle.version(tx, { ...current, ...values, id: runId, status: 'completed', input: {}, startedAt: current.now, finishedAt: current.now }),
          ),
      },
    ]);
    return made!.row; // a version's run is new: never ended elsewhere
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

/** What a statement built on completedStage is given, besides the run's own values. */
type Current = { projectId: string; stage: StageKey; runId: string; output: unknown; now: Date; perShot: readonly StageKey[]; changedShotIds: string[] };

/**
 * A transaction's share (db/transaction-group.ts) that makes a run current: the stage persists its
 * output through its repositories; then, sent together in this order (the lock order: project, run,
 * stage), the project's lock (sent first of all), `save` (a statement built on completedStage: the run
 * saved and made its stage's current result), the project's status settled from what they changed,
 * and `also`. When the stage's save wrote nothing, the COMMIT may go with them: one round trip, in
 * which a run no longer active changes nothing (null) but the status, re-derived from what is there.
 * When it wrote, the COMMIT waits for the run's answer, and a run no longer active undoes it all (NotActive).
 */
async function makeCurrent<Row>(
  tx: Db,
  run: { projectId: string; stage: StageKey; runId: string },
  persist: (store: StageStore) => Promise<unknown>,
  save: (current: Current) => Promise<Row[]>,
  also: () => Promise<unknown> | false = () => false,
): Promise<{ answer: Promise<{ row: Row; output: unknown; pipeline: PipelineState | undefined } | null>; checked: boolean }> {
  const locked = lockingProject(tx, run.projectId);
  const store = { storyboards: new StoryboardRepository(tx) };
  const output = await persist(store);
  const now = new Date();
  const current = { ...run, output, now, perShot: PER_SHOT_DEPENDENTS[run.stage] ?? [], changedShotIds: [...store.storyboards.changedShotIds] };
  const made = Promise.all([locked, save(current), settleProjectStatus(tx, { projectId: run.projectId, now }), also()]).then(([project, [row]]) =>
    row ? { row, output, pipeline: project?.pipelineState } : null,
  );
  if (!store.storyboards.wrote) return { answer: made, checked: false };
  return {
    checked: true,
    answer: made.then((result) => {
      if (!result) throw new NotActive();
      return result;
    }),
  };
}

/**
 * What follows a CTE named `run` that saves a completed run and answers it: the rest of its making
 * current, in the same statement and only when the run was saved. Its stage is completed with its
 * output, pointing at it. Then what follows from the new output: when the change is known per shot
 * (a storyboard saved in place, shots retimed by their narration), the completed stages after it that
 * depend on it per shot (`perShot`) get the changed shots added to their `stale_shot_ids`, in order
 * and once each, and redo only them; every other completed stage after it becomes stale.
 */
function completedStage(db: Db) {
  const stage = db.$with('stage').as(
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
      .where(and(eq(projectStages.projectId, value('projectId')), eq(projectStages.stageType, value('stage')), runSaved))
      .returning({ position: projectStages.position }),
  );
  const perShot = sql`${projectStages.stageType} = any(${value('perShot')}::text[])`;
  const changed = given(projectStages.staleShotIds, 'changedShotIds');
  const withChanged = sql`(select coalesce(jsonb_agg(id order by n), '[]'::jsonb) from (select id, min(n) as n from jsonb_array_elements(${projectStages.staleShotIds} || ${changed}) with ordinality as e(id, n) group by id) ids)`;
  const later = db.$with('later').as(
    db
      .update(projectStages)
      .set({
        stale: sql`${projectStages.stale} or not ${perShot}`,
        staleShotIds: sql`case when ${perShot} then ${withChanged} else ${projectStages.staleShotIds} end`,
        updatedAt: given(projectStages.updatedAt, 'now'),
      })
      .from(stage)
      .where(
        and(
          eq(projectStages.projectId, value('projectId')),
          eq(projectStages.status, 'completed'),
          gt(projectStages.position, stage.position),
          or(not(perShot), sql`jsonb_array_length(${changed}) > 0`),
        ),
      )
      .returning({ id: projectStages.id }),
  );
  return [stage, later] as const;
}

/** What `projects.pipeline_state` holds (the schema's enum is the one list). */
export type PipelineState = ProjectRow['pipelineState'];
/** What an ending reads of the project it locks: the pipeline's state (its status is settled in SQL). */
type ProjectState = { pipelineState: PipelineState };

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

/**
 * Later stages that a stage's save makes out of date shot by shot (the others become stale as a
 * whole): a storyboard save changes shots' content, which every media stage redoes per shot; a
 * narration save changes shots' lengths, which only their clips depend on (the export mixes the
 * narration itself, so it is stale whenever the narration changes).
 */
const PER_SHOT_DEPENDENTS: Partial<Record<StageKey, readonly StageKey[]>> = { storyboard: MEDIA_STAGES, narration: ['video'] };

/**
 * Run writes sharing one transaction on PGlite at most: there it holds the one session, which the
 * project list's reads wait for. At 400 streams, in three rounds of the relay bench, the list's time in
 * the studio was 67-165 ms at this cap against 236-393 ms at PostgreSQL's 64.
 */
const PGLITE_SHARES = 8;

/** PostgreSQL's SQLSTATE codes for the refusals a start expects. */
const UNIQUE_VIOLATION = '23505';
const FOREIGN_KEY_VIOLATION = '23503';
/** The run's reference to its project (migrations/0000_init.sql): refused when the project is gone. */
const PROJECT_OF_RUN = 'stage_runs_project_id_projects_id_fk';

/** Whether PostgreSQL refused the statement with `code` (SQLSTATE), on `constraint` when one is named. */
function violated(err: unknown, code: string, constraint?: string): boolean {
  for (let e: any = err; e; e = e.cause) if (e.code === code && (!constraint || e.constraint_name === constraint)) return true;
  return false;
}
