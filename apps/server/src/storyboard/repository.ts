import { and, asc, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { cameraMovements, storyboardShots } from '../db/schema.ts';

export class StoryboardRepository {
  constructor(private readonly db: Db) {}

  shots = (projectId: string) =>
    this.db.select().from(storyboardShots).where(eq(storyboardShots.projectId, projectId)).orderBy(asc(storyboardShots.sequenceNumber));

  shot = async (id: string) => (await this.db.select().from(storyboardShots).where(eq(storyboardShots.id, id)))[0];

  /** Inserts a shot at a position, shifting the later ones, so numbers stay dense and unique. */
  insertAt = (projectId: string, position: number, values: Omit<typeof storyboardShots.$inferInsert, 'projectId' | 'sequenceNumber'>) =>
    this.db.transaction(async (tx) => {
      await tx
        .update(storyboardShots)
        .set({ sequenceNumber: sql`${storyboardShots.sequenceNumber} + 1` })
        .where(and(eq(storyboardShots.projectId, projectId), sql`${storyboardShots.sequenceNumber} >= ${position}`));
      return (await tx.insert(storyboardShots).values({ ...values, projectId, sequenceNumber: position }).returning())[0];
    });

  update = async (id: string, values: Partial<typeof storyboardShots.$inferInsert>) =>
    (await this.db.update(storyboardShots).set(values).where(eq(storyboardShots.id, id)).returning())[0];

  /** Deletes a shot and closes the gap it leaves. */
  delete = (shot: { id: string; projectId: string; sequenceNumber: number }) =>
    this.db.transaction(async (tx) => {
      await tx.delete(storyboardShots).where(eq(storyboardShots.id, shot.id));
      await tx
        .update(storyboardShots)
        .set({ sequenceNumber: sql`${storyboardShots.sequenceNumber} - 1` })
        .where(and(eq(storyboardShots.projectId, shot.projectId), sql`${storyboardShots.sequenceNumber} > ${shot.sequenceNumber}`));
    });

  /** Renumbers every shot 1..n in the given order, in one transaction. */
  reorder = (ids: string[]) =>
    this.db.transaction(async (tx) => {
      for (const [i, id] of ids.entries()) await tx.update(storyboardShots).set({ sequenceNumber: i + 1 }).where(eq(storyboardShots.id, id));
    });

  movement = async (id: string) => (await this.db.select().from(cameraMovements).where(eq(cameraMovements.id, id)))[0];
  updateMovement = async (id: string, values: Partial<typeof cameraMovements.$inferInsert>) =>
    (await this.db.update(cameraMovements).set(values).where(eq(cameraMovements.id, id)).returning())[0];
}
