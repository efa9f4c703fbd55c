import type { Movement, MovementType, Shot } from '@ai-story/contracts';
import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { cameraMovements, storyboardShots } from '../db/schema.ts';

type ShotFields = Pick<Shot, 'scene_description' | 'narration_text' | 'image_prompt' | 'duration_seconds'> & { speaker?: string | null };

const shotsQuery = (db: Db, name = 'shots_of_project') =>
  db.select().from(storyboardShots).where(eq(storyboardShots.projectId, sql.placeholder('projectId'))).orderBy(asc(storyboardShots.sequenceNumber)).prepare(name);

/** Every movement of a project, in shot order. */
async function movementsIn(db: Db, projectId: string): Promise<Movement[]> {
  const rows = await db
    .select({ m: cameraMovements, seq: storyboardShots.sequenceNumber })
    .from(cameraMovements)
    .innerJoin(storyboardShots, eq(storyboardShots.id, cameraMovements.shotId))
    .where(eq(cameraMovements.projectId, projectId))
    .orderBy(sql`${storyboardShots.sequenceNumber}`);
  return rows.map(({ m, seq }) => ({ id: m.id, shot_id: m.shotId, sequence_number: seq, movement_type: m.movementType as MovementType, params: m.params as Movement['params'] }));
}

export class StoryboardRepository {
  /** Shots whose content (a storyboard save) or length (a narration save) changed: their media downstream is out of date. */
  readonly changedShotIds = new Set<string>();

  /** Whether a stage's save wrote through this repository: a run's ending then has something to undo if the run is no longer its to end. */
  wrote = false;

  /**
   * Every run start reads them: built once, on first use (drizzle's query building is a good part of a
   * start's CPU, and a repository made for one transaction's version save may never read them).
   */
  private shotsOfProject?: ReturnType<typeof shotsQuery>;

  private shotsOfPage?: ReturnType<typeof shotsQuery>;

  /** `readDb`: where the storyboard and camera panels read what they show (Database.readDb). */
  constructor(
    private readonly db: Db,
    private readonly readDb: Db = db,
  ) {}

  /**
   * A new storyboard over the old one, by position (DESIGN §9): shots that still exist keep their ids,
   * so images, narration and clips stay attached; new ones are added, surplus ones deleted (their
   * media stays in the history). Shots whose text changed are remembered in `changedShotIds`.
   */
  async replaceShots(projectId: string, shots: ShotFields[]) {
    const existing = await this.shots(projectId);
    for (const [i, s] of shots.entries()) {
      const values = {
        sequenceNumber: i + 1,
        sceneDescription: s.scene_description,
        narrationText: s.narration_text,
        imagePrompt: s.image_prompt,
        durationSeconds: s.duration_seconds,
        speaker: s.speaker ?? null,
      };
      const old = existing[i];
      if (!old) {
        this.wrote = true;
        const [row] = await this.db.insert(storyboardShots).values({ ...values, projectId }).returning({ id: storyboardShots.id });
        this.changedShotIds.add(row.id);
        continue;
      }
      const same =
        old.sceneDescription === values.sceneDescription &&
        old.narrationText === values.narrationText &&
        old.imagePrompt === values.imagePrompt &&
        old.durationSeconds === values.durationSeconds &&
        old.speaker === values.speaker &&
        old.sequenceNumber === values.sequenceNumber;
      if (same) continue;
      this.wrote = true;
      await this.db.update(storyboardShots).set(values).where(eq(storyboardShots.id, old.id));
      this.changedShotIds.add(old.id);
    }
    const surplus = existing.slice(shots.length).map((s) => s.id);
    if (surplus.length) {
      this.wrote = true;
      await this.db.delete(storyboardShots).where(inArray(storyboardShots.id, surplus));
    }
    return this.shots(projectId);
  }

  /**
   * Shot lengths set from their narration (DESIGN §9). A shot the user locked keeps its length; a
   * shot whose length changes is remembered in `changedShotIds` (its clip must be rendered again).
   */
  async setNarratedDurations(projectId: string, lengths: { shotId: string; seconds: number }[]) {
    const shots = new Map((await this.shots(projectId)).map((s) => [s.id, s]));
    for (const { shotId, seconds } of lengths) {
      const shot = shots.get(shotId);
      if (!shot || shot.durationLocked || Math.abs(shot.durationSeconds - seconds) < 0.001) continue;
      this.wrote = true;
      await this.db.update(storyboardShots).set({ durationSeconds: seconds }).where(eq(storyboardShots.id, shotId));
      this.changedShotIds.add(shotId);
    }
  }

  /** Saves one movement per shot (a shot's earlier movement is replaced). */
  async upsertMovements(projectId: string, movements: Movement[]) {
    for (const m of movements) {
      this.wrote = true;
      await this.db
        .insert(cameraMovements)
        .values({ projectId, shotId: m.shot_id!, movementType: m.movement_type, params: m.params })
        .onConflictDoUpdate({ target: cameraMovements.shotId, set: { movementType: m.movement_type, params: m.params } });
    }
  }

  /** Every movement of the project, in shot order. */
  movementsOf = (projectId: string): Promise<Movement[]> => movementsIn(this.db, projectId);

  /** `movementsOf` for the camera panel, read first in line. */
  movementsToShow = (projectId: string): Promise<Movement[]> => movementsIn(this.readDb, projectId);

  shots = (projectId: string) => (this.shotsOfProject ??= shotsQuery(this.db)).execute({ projectId });

  /** `shots` for the storyboard panel, read first in line. */
  shotsToShow = (projectId: string) => (this.shotsOfPage ??= shotsQuery(this.readDb, 'shots_to_show')).execute({ projectId });

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
