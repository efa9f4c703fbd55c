import { STAGE_KEYS, type StageKey } from '@ai-story/contracts';
import type { AuthUser } from '../auth/service.ts';
import { AppError, conflict } from '../errors.ts';
import type { ProjectRepository } from '../projects/repository.ts';
import type { ProjectService } from '../projects/service.ts';
import type { RunRepository } from '../runs/repository.ts';
import type { RunService } from '../runs/service.ts';
import { REASONS } from '../projects/status-reasons.ts';

const DONE = new Set(['completed', 'skipped']);

/**
 * The one-click pipeline (输入主题 → 文案改写 → 分镜生成 → …): each stage is a normal run, so everything
 * the run engine guarantees holds here too. The pipeline's state lives on the project, so a
 * restart does not lose whether it was paused.
 */
export class PipelineService {
  /** Who started each project's pipeline: the runs it starts are theirs. */
  private readonly startedBy = new Map<string, AuthUser>();

  constructor(
    private readonly projects: ProjectService,
    private readonly projectRepo: ProjectRepository,
    private readonly runs: RunService,
    private readonly runRepo: RunRepository,
  ) {
    runs.onFinished(async ({ runId, projectId, status, pipeline }) => {
      // Idle or paused when the run's ending was saved: only the user moves it on from there, and a
      // pipeline they start from now on advances by itself.
      if (pipeline === 'idle' || pipeline === 'paused') return;
      const project = await this.projectRepo.findById(projectId);
      if (!project || project.pipelineState === 'idle' || project.pipelineState === 'paused') return;
      if (project.pipelineState === 'pausing') return this.settle(projectId, 'paused');
      if (status !== 'completed') return this.settle(projectId, 'idle'); // failed or stopped: the user decides
      // A media stage where some shots failed: the pipeline waits for the user to retry or go on.
      const output = (await this.runRepo.find(runId))?.output as { failed_shot_ids?: string[] } | null;
      if (output?.failed_shot_ids?.length) return this.settle(projectId, 'paused');
      await this.advance(projectId);
    });
  }

  async execute(user: AuthUser, projectId: string, fromStage?: StageKey) {
    await this.projects.allows(user, projectId, 'edit');
    const active = (await this.runRepo.activeOfProject(projectId))[0];
    if (active) throw conflict('A stage of this project is already running', { active_run_id: active.id });
    if (fromStage) {
      // Running again from a stage makes it and every later stage due, whatever their status.
      for (const stage of STAGE_KEYS.slice(STAGE_KEYS.indexOf(fromStage))) {
        const row = await this.projectRepo.stage(projectId, stage);
        if (row && DONE.has(row.status)) await this.projectRepo.updateStage(projectId, stage, { status: 'pending', statusReason: null });
      }
    }
    this.startedBy.set(projectId, user);
    await this.projects.setPipelineState(projectId, 'running');
    await this.advance(projectId);
    return this.projects.get(user, projectId);
  }

  async pause(user: AuthUser, projectId: string) {
    const { project } = await this.projects.access(user, projectId, 'edit');
    if (project.pipelineState === 'idle' || project.pipelineState === 'paused') throw conflict('The pipeline is not running');
    const running = (await this.runRepo.activeOfProject(projectId)).length > 0;
    await this.settle(projectId, running ? 'pausing' : 'paused');
    return this.projects.get(user, projectId);
  }

  async resume(user: AuthUser, projectId: string) {
    const { project } = await this.projects.access(user, projectId, 'edit');
    if (project.pipelineState !== 'paused' && project.pipelineState !== 'pausing') throw conflict('The pipeline is not paused');
    this.startedBy.set(projectId, user);
    await this.projects.setPipelineState(projectId, 'running');
    if ((await this.runRepo.activeOfProject(projectId)).length === 0) await this.advance(projectId);
    return this.projects.get(user, projectId);
  }

  /** Runs one stage again with its default input (its own run: the pipeline state is untouched). */
  async retry(user: AuthUser, projectId: string, stage: StageKey) {
    return this.runs.start(user, projectId, stage, { input: {} });
  }

  async skip(user: AuthUser, projectId: string, stage: StageKey) {
    await this.projects.allows(user, projectId, 'edit');
    const active = await this.runRepo.findActive(projectId, stage);
    if (active) throw conflict('Stop the running generation before skipping this stage', { active_run_id: active.id });
    await this.projectRepo.updateStage(projectId, stage, { status: 'skipped', statusReason: REASONS.skipped_by_user, stale: false });
    await this.projects.refreshStatus(projectId);
    return this.projects.get(user, projectId);
  }

  /** Starts the next stage that is not done; stages not built yet are skipped with the reason shown. */
  private async advance(projectId: string) {
    const stages = await this.projectRepo.stages(projectId);
    const skipped = new Set(stages.filter((s) => s.status === 'skipped').map((s) => s.stageType));
    for (const row of stages) {
      const stage = row.stageType as StageKey;
      if (DONE.has(row.status) && !row.stale) continue;
      const definition = this.runs.definitionOf(stage);
      if (!definition) {
        await this.projectRepo.updateStage(projectId, stage, { status: 'skipped', statusReason: REASONS.stage_not_built });
        skipped.add(stage);
        continue;
      }
      const missing = definition.needs?.find((need) => skipped.has(need));
      if (missing) {
        await this.projectRepo.updateStage(projectId, stage, { status: 'skipped', statusReason: `Skipped: it needs the ${missing} stage, which was skipped` });
        skipped.add(stage);
        continue;
      }
      const user = this.startedBy.get(projectId) ?? (await this.ownerOf(projectId));
      try {
        await this.runs.start(user, projectId, stage, { input: {} });
      } catch (err) {
        await this.settle(projectId, 'idle');
        await this.projectRepo.updateStage(projectId, stage, { status: 'failed', statusReason: err instanceof Error ? err.message : 'Could not start' });
        await this.projects.refreshStatus(projectId);
        if (err instanceof AppError && err.status >= 500) throw err;
      }
      return;
    }
    await this.settle(projectId, 'idle');
  }

  private async settle(projectId: string, state: 'idle' | 'paused' | 'pausing') {
    await this.projects.setPipelineState(projectId, state);
    if (state === 'idle') this.startedBy.delete(projectId);
    await this.projects.refreshStatus(projectId);
  }

  private async ownerOf(projectId: string): Promise<AuthUser> {
    const project = (await this.projectRepo.findById(projectId))!;
    const owner = (await this.projectRepo.findUser({ id: project.ownerId }))!;
    return { id: owner.id, email: owner.email, name: owner.name, role: owner.role };
  }
}
