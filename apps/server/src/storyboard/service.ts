import type { Movement, MovementType, Shot, StageKey } from '@ai-story/contracts';
import type { StageDefinition } from '../stages/definition.ts';
import type { AuthUser } from '../auth/service.ts';
import { AppError, conflict, notFound } from '../errors.ts';
import type { ProjectRepository } from '../projects/repository.ts';
import type { ProjectService } from '../projects/service.ts';
import type { RunRepository } from '../runs/repository.ts';
import { shotOf } from '../stages/storyboard.ts';
import type { StoryboardRepository } from './repository.ts';

type ShotFields = {
  scene_description?: string;
  narration_text?: string;
  image_prompt?: string;
  duration_seconds?: number;
  speaker?: string | null;
  duration_locked?: boolean;
  media_settings?: Partial<Record<StageKey, Record<string, unknown>>>;
};

/**
 * Hand edits of the storyboard and its camera movements. Sequence numbers stay dense (1..n) and
 * unique through every add, delete and reorder; the stage's output follows the tables.
 */
export class StoryboardService {
  constructor(
    private readonly repo: StoryboardRepository,
    private readonly projects: ProjectService,
    private readonly projectRepo: ProjectRepository,
    private readonly runs: RunRepository,
    private readonly definitionOf: (stage: StageKey) => StageDefinition | undefined,
  ) {}

  async list(user: AuthUser, projectId: string) {
    await this.projects.allows(user, projectId, 'view');
    const shots = (await this.repo.shotsToShow(projectId)).map(shotOf);
    return { count: shots.length, results: shots, total_duration_seconds: shots.reduce((a, s) => a + s.duration_seconds, 0) };
  }

  async add(user: AuthUser, projectId: string, input: ShotFields & { sequence_number?: number }) {
    await this.editable(user, projectId);
    const count = (await this.repo.shots(projectId)).length;
    const position = Math.min(input.sequence_number ?? count + 1, count + 1);
    const row = await this.repo.insertAt(projectId, position, {
      sceneDescription: input.scene_description ?? '',
      narrationText: input.narration_text ?? '',
      imagePrompt: input.image_prompt ?? '',
      durationSeconds: input.duration_seconds ?? 3,
    });
    await this.syncOutputs(projectId);
    return shotOf(row);
  }

  async update(user: AuthUser, shotId: string, patch: ShotFields): Promise<Shot> {
    const shot = await this.shotFor(user, shotId);
    const mediaSettings = patch.media_settings && this.mergedMediaSettings(shot.mediaSettings ?? {}, patch.media_settings);
    const row = await this.repo.update(shotId, {
      ...(mediaSettings && { mediaSettings }),
      ...(patch.scene_description !== undefined && { sceneDescription: patch.scene_description }),
      ...(patch.narration_text !== undefined && { narrationText: patch.narration_text }),
      ...(patch.image_prompt !== undefined && { imagePrompt: patch.image_prompt }),
      ...(patch.duration_seconds !== undefined && { durationSeconds: patch.duration_seconds }),
      ...(patch.speaker !== undefined && { speaker: patch.speaker || null }),
      // A length set by hand is kept: narration is fitted to it instead of setting it (DESIGN §9).
      ...((patch.duration_locked !== undefined || patch.duration_seconds !== undefined) && { durationLocked: patch.duration_locked ?? true }),
    });
    await this.syncOutputs(shot.projectId);
    // A new image prompt makes that shot's image out of date, and a new length its clip (a clip is as
    // long as its shot) — that shot only, not the whole stage (DESIGN §9).
    if (patch.image_prompt !== undefined && patch.image_prompt !== shot.imagePrompt) await this.markShotStale(shot.projectId, 'image', shot.id);
    if (patch.duration_seconds !== undefined && patch.duration_seconds !== shot.durationSeconds) await this.markShotStale(shot.projectId, 'video', shot.id);
    return shotOf(row);
  }

  private async markShotStale(projectId: string, stage: StageKey, shotId: string) {
    const row = await this.projectRepo.stage(projectId, stage);
    if (row?.status !== 'completed' || row.staleShotIds?.includes(shotId)) return;
    await this.projectRepo.updateStage(projectId, stage, { staleShotIds: [...(row.staleShotIds ?? []), shotId] });
    this.projects.notifyChange(projectId);
  }

  async remove(user: AuthUser, shotId: string) {
    const shot = await this.shotFor(user, shotId);
    await this.repo.delete(shot);
    await this.syncOutputs(shot.projectId);
  }

  async reorder(user: AuthUser, projectId: string, ids: string[]) {
    await this.editable(user, projectId);
    const current = await this.repo.shots(projectId);
    const known = new Set(current.map((s) => s.id));
    if (ids.length !== current.length || new Set(ids).size !== ids.length || !ids.every((id) => known.has(id))) {
      throw new AppError(400, 'validation_error', 'ids must list every shot of the project exactly once', { fields: { ids: 'Every shot exactly once' } });
    }
    await this.repo.reorder(ids);
    await this.syncOutputs(projectId);
    return this.list(user, projectId);
  }

  async movements(user: AuthUser, projectId: string) {
    await this.projects.allows(user, projectId, 'view');
    const results = await this.repo.movementsToShow(projectId);
    return { count: results.length, results };
  }

  async updateMovement(user: AuthUser, id: string, patch: { movement_type?: MovementType; params?: Partial<Movement['params']> }) {
    const row = await this.repo.movement(id);
    if (!row) throw notFound('Camera movement');
    await this.editable(user, row.projectId);
    await this.repo.updateMovement(id, {
      ...(patch.movement_type && { movementType: patch.movement_type }),
      ...(patch.params && { params: { ...(row.params as Movement['params']), ...patch.params } }),
    });
    // A movement edited by hand is the camera stage's own output changing, not its input: not stale.
    await this.syncOutputs(row.projectId, { shotsChanged: false });
    // …but the shot's clip was rendered with the old movement.
    await this.markShotStale(row.projectId, 'video', row.shotId);
    return (await this.repo.movementsOf(row.projectId)).find((m) => m.id === id)!;
  }

  /** A shot's per-stage choices after a patch, each stage's part checked by that stage's schema. */
  private mergedMediaSettings(current: Record<string, Record<string, unknown>>, patch: Partial<Record<StageKey, Record<string, unknown>>>) {
    const merged = { ...current };
    for (const [stage, values] of Object.entries(patch) as [StageKey, Record<string, unknown>][]) {
      const schema = this.definitionOf(stage)?.shotSettings;
      if (!schema) throw new AppError(400, 'validation_error', `media_settings.${stage}: this stage has no per-shot settings`, { fields: { [`media_settings.${stage}`]: 'No per-shot settings' } });
      const parsed = schema.safeParse({ ...(current[stage] ?? {}), ...values });
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const field = ['media_settings', stage, ...issue.path].join('.');
        throw new AppError(400, 'validation_error', `${field}: ${issue.message}`, { fields: { [field]: issue.message } });
      }
      merged[stage] = parsed.data;
    }
    return merged;
  }

  private async shotFor(user: AuthUser, shotId: string) {
    const shot = await this.repo.shot(shotId);
    if (!shot) throw notFound('Shot');
    await this.editable(user, shot.projectId);
    return shot;
  }

  /** Edits wait while a generation would replace what is being edited. */
  private async editable(user: AuthUser, projectId: string) {
    await this.projects.allows(user, projectId, 'edit');
    for (const stage of ['storyboard', 'camera'] as const) {
      const active = await this.runs.findActive(projectId, stage);
      if (active) throw conflict(`Wait for the running ${stage} generation to finish, or stop it first`, { active_run_id: active.id });
    }
  }

  /** The video stage redoes this shot next time (its other clips stay); only a completed stage has clips to be stale. */
  /** Keeps the stages' current outputs equal to the tables after a hand edit; changed shots make the camera stale. */
  private async syncOutputs(projectId: string, { shotsChanged = true } = {}) {
    const shots = (await this.repo.shots(projectId)).map(shotOf);
    const storyboard = await this.projectRepo.stage(projectId, 'storyboard');
    if (storyboard?.output || shots.length) await this.projectRepo.updateStage(projectId, 'storyboard', { output: { shots } });
    const camera = await this.projectRepo.stage(projectId, 'camera');
    if (camera?.output) {
      await this.projectRepo.updateStage(projectId, 'camera', { output: { movements: await this.repo.movementsOf(projectId) }, ...(shotsChanged && camera.status === 'completed' && { stale: true }) });
    }
    this.projects.notifyChange(projectId);
  }
}
