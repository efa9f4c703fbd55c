import type { StageKey } from '@ai-story/contracts';
import { and, asc, count, desc, eq, inArray } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { projectStages, runTextChunks, stageRuns, type RunRow } from '../db/schema.ts';

const ACTIVE = ['queued', 'running'];

export class RunRepository {
  constructor(readonly db: Db) {}

  /** Inserts a running run; the partial unique index refuses a second active run of the same stage. */
  async insertActive(values: typeof stageRuns.$inferInsert): Promise<RunRow | 'conflict'> {
    try {
      return (await this.db.insert(stageRuns).values(values).returning())[0];
    } catch (err) {
      if (isUniqueViolation(err)) return 'conflict';
      throw err;
    }
  }

  insert = async (values: typeof stageRuns.$inferInsert) => (await this.db.insert(stageRuns).values(values).returning())[0];
  find = async (id: string) => (await this.db.select().from(stageRuns).where(eq(stageRuns.id, id)))[0];
  findActive = async (projectId: string, stage: StageKey) =>
    (await this.db.select().from(stageRuns).where(and(eq(stageRuns.projectId, projectId), eq(stageRuns.stage, stage), inArray(stageRuns.status, ACTIVE))))[0];
  activeOfProject = (projectId: string) => this.db.select().from(stageRuns).where(and(eq(stageRuns.projectId, projectId), inArray(stageRuns.status, ACTIVE)));

  update = async (id: string, values: Partial<typeof stageRuns.$inferInsert>) => {
    await this.db.update(stageRuns).set(values).where(eq(stageRuns.id, id));
  };

  /** One statement for many runs' checkpoints. */
  /** One statement for many runs' checkpoints: each appends only its new text. */
  async appendChunks(chunks: { runId: string; seq: number; offset: number; text: string }[]) {
    await this.db.insert(runTextChunks).values(chunks);
  }

  /** The text a run had checkpointed, rebuilt from its chunks. */
  async checkpointedText(tx: Db, runId: string): Promise<string | null> {
    const chunks = await tx.select().from(runTextChunks).where(eq(runTextChunks.runId, runId)).orderBy(asc(runTextChunks.seq));
    if (!chunks.length) return null;
    return chunks.reduce((text, c) => text.slice(0, c.offset) + c.text, '');
  }

  deleteChunks = async (tx: Db, runId: string) => {
    await tx.delete(runTextChunks).where(eq(runTextChunks.runId, runId));
  };

  async history(projectId: string, stage: StageKey, page: number, pageSize: number) {
    const where = and(eq(stageRuns.projectId, projectId), eq(stageRuns.stage, stage));
    const [rows, [{ n }]] = await Promise.all([
      this.db.select().from(stageRuns).where(where).orderBy(desc(stageRuns.createdAt), desc(stageRuns.id)).limit(pageSize).offset((page - 1) * pageSize),
      this.db.select({ n: count() }).from(stageRuns).where(where),
    ]);
    return { count: n, rows };
  }

  /** After a crash: runs the dead process left active become `interrupted`, their partial text kept. */
  async interruptOrphans(): Promise<{ id: string; projectId: string; stage: string }[]> {
    return this.db.transaction(async (tx) => {
      const orphans = await tx
        .update(stageRuns)
        .set({ status: 'interrupted', finishedAt: new Date(), error: { message: 'The server stopped while this run was in progress', code: 'interrupted', retryable: true } })
        .where(inArray(stageRuns.status, ACTIVE))
        .returning({ id: stageRuns.id, projectId: stageRuns.projectId, stage: stageRuns.stage, text: stageRuns.text });
      for (const orphan of orphans) {
        const text = await this.checkpointedText(tx, orphan.id);
        if (text !== null) await tx.update(stageRuns).set({ text }).where(eq(stageRuns.id, orphan.id));
        await this.deleteChunks(tx, orphan.id);
      }
      if (orphans.length) {
        await tx
          .update(projectStages)
          .set({ status: 'interrupted', statusReason: 'The server stopped during the run', updatedAt: new Date() })
          .where(and(inArray(projectStages.currentRunId, orphans.map((o) => o.id)), eq(projectStages.status, 'running')));
      }
      return orphans;
    });
  }
}

function isUniqueViolation(err: unknown): boolean {
  for (let e: any = err; e; e = e.cause) if (e.code === '23505') return true;
  return false;
}
