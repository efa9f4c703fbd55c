import { STAGE_KEYS, type AccessLoss, type AccessRole, type MediaSettings, type Project, type ProjectDetail, type ProjectStage, type StageKey } from '@ai-story/contracts';
import type { AuthUser } from '../auth/service.ts';
import type { ProjectRow, StageRow } from '../db/schema.ts';
import { AppError, forbidden, notFound } from '../errors.ts';
import type { ProjectRepository } from './repository.ts';
import { reasonCode } from './status-reasons.ts';

export type Need = 'view' | 'edit' | 'own';
const RANK: Record<AccessRole, number> = { viewer: 0, editor: 1, owner: 2 };
const NEED: Record<Need, number> = { view: 0, edit: 1, own: 2 };

export interface Access {
  project: ProjectRow;
  role: AccessRole;
}

/** Listeners told when a project's stages or status change (the project event stream subscribes). */
export type ProjectChangeListener = (projectId: string) => void;

export class ProjectService {
  private readonly listeners = new Set<ProjectChangeListener>();
  /** Per project: every open event stream checks its reader's access on a change of its own project only. */
  private readonly listenersOf = new Map<string, Set<() => void>>();
  private accessChanges = 0;
  private accessRelay?: (projectId: string) => void;

  constructor(private readonly repo: ProjectRepository) {}

  /** Told of a change to any project. */
  onChange(listener: ProjectChangeListener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Told of a change to one project. Every run starts and ends with a change, and every open stream
   * listens: filed by project, a change costs its own project's listeners, not every stream's.
   */
  onChangeOf(projectId: string, listener: () => void) {
    let own = this.listenersOf.get(projectId);
    if (!own) this.listenersOf.set(projectId, (own = new Set()));
    own.add(listener);
    return () => {
      own.delete(listener);
      if (own.size === 0 && this.listenersOf.get(projectId) === own) this.listenersOf.delete(projectId);
    };
  }

  /**
   * Grows once someone may have lost access to a project here (a member removed, a project deleted),
   * after the change is saved: an access check read before then may be stale.
   */
  get accessVersion() {
    return this.accessChanges;
  }

  /** Scale-out mode: every access change made here is also handed to `relay`, which brings it to the other instances (they call `accessChangedElsewhere`). */
  shareAccessChangesWith(relay: (projectId: string) => void) {
    this.accessRelay = relay;
  }

  /** Another instance changed access to the project: counted here too, and its open streams here re-check their readers. */
  accessChangedElsewhere(projectId: string) {
    this.accessChanges++;
    this.notifyListenersOf(projectId);
  }

  /** A change saved here may have taken someone's access to the project. */
  private accessChanged(projectId: string) {
    this.accessChanges++;
    this.accessRelay?.(projectId);
    this.notifyChange(projectId);
  }

  notifyChange(projectId: string) {
    for (const l of this.listeners) l(projectId);
    this.notifyListenersOf(projectId);
  }

  private notifyListenersOf(projectId: string) {
    for (const l of this.listenersOf.get(projectId) ?? []) l();
  }

  /** The user's access to a project, as `checkAccess` rules. */
  async access(user: AuthUser, projectId: string, need: Need): Promise<Access> {
    // As in `allows`: a view is checked first in line.
    const row = need === 'view' ? await this.repo.findWithRoleToView(projectId, user.id) : await this.repo.findWithRole(projectId, user.id);
    return checkAccess(user, row, need);
  }

  /** `access` for a caller that needs no more than the verdict: the project itself is not read. */
  async allows(user: AuthUser, projectId: string, need: Need): Promise<AccessRole> {
    // A view is only ever checked as a request starts, never inside a transaction, and the reads
    // behind it are a person's (a panel, a picture, a history): so it is read first in line.
    const row = need === 'view' ? await this.repo.ownerAndRoleToView(projectId, user.id) : await this.repo.ownerAndRole(projectId, user.id);
    return allowedRole(user, row, need);
  }

  /** Access to start a run of `stage`, with the project's stages (the outputs of `reads` only) and the stage's active run, in one read. */
  async accessForRun(user: AuthUser, projectId: string, stage: StageKey, reads: readonly StageKey[] = []) {
    const row = await this.repo.findForRun(projectId, user.id, stage, reads);
    return { ...checkAccess(user, row, 'edit'), stages: row!.stages, activeRunId: row!.activeRunId };
  }

  /** Why a user can no longer see a project (it was deleted, or their access was removed), or null while they can: what ends their open streams. */
  async accessLoss(userId: string, projectId: string): Promise<AccessLoss | null> {
    const row = await this.repo.ownerAndRole(projectId, userId);
    if (!row) return 'deleted';
    return roleIn(row, userId) ? null : 'removed';
  }

  async create(user: AuthUser, input: { name: string; original_topic: string; description: string; style: string }) {
    const { project, stages } = await this.repo.create({
      ownerId: user.id,
      name: input.name,
      originalTopic: input.original_topic,
      description: input.description,
      style: input.style,
    });
    return toDetail(project, 'owner', stages);
  }

  async list(user: AuthUser, page: number, pageSize: number, search?: string) {
    const { count, rows } = await this.repo.listVisible(user.id, page, pageSize, search);
    return {
      count,
      results: rows.map((r) => toProject(r.project, r.project.ownerId === user.id ? 'owner' : (r.role ?? 'viewer'), r.done, r.stale ?? [])),
    };
  }

  async get(user: AuthUser, projectId: string) {
    const { project, role, stages } = await this.page(user, projectId);
    return toDetail(project, role, stages);
  }

  async update(user: AuthUser, projectId: string, patch: { name?: string; original_topic?: string; description?: string; style?: string } & Partial<MediaSettings>) {
    const { project, role } = await this.access(user, projectId, 'edit');
    // A range is checked as it will be saved: one end changed alone must still leave min ≤ max.
    const min = patch.min_shot_s ?? project.minShotS;
    const max = patch.max_shot_s ?? project.maxShotS;
    if (min > max) {
      const field = patch.min_shot_s !== undefined ? 'min_shot_s' : 'max_shot_s';
      throw new AppError(400, 'validation_error', `${field}: the shortest shot must not be longer than the longest`, { fields: { [field]: 'min_shot_s must not exceed max_shot_s' } });
    }
    const updated = await this.repo.update(projectId, {
      ...(patch.name !== undefined && { name: patch.name }),
      ...(patch.original_topic !== undefined && { originalTopic: patch.original_topic }),
      ...(patch.description !== undefined && { description: patch.description }),
      ...(patch.style !== undefined && { style: patch.style }),
      ...(patch.aspect_ratio !== undefined && { aspectRatio: patch.aspect_ratio }),
      ...(patch.resolution !== undefined && { resolution: patch.resolution }),
      ...(patch.fps !== undefined && { fps: patch.fps }),
      ...(patch.min_shot_s !== undefined && { minShotS: patch.min_shot_s }),
      ...(patch.max_shot_s !== undefined && { maxShotS: patch.max_shot_s }),
    });
    const stages = await this.repo.stages(projectId);
    this.notifyChange(projectId);
    return toDetail(updated, role, stages);
  }

  async remove(user: AuthUser, projectId: string) {
    await this.access(user, projectId, 'own');
    await this.repo.delete(projectId);
    this.accessChanged(projectId);
  }

  async stages(user: AuthUser, projectId: string) {
    return (await this.page(user, projectId)).stages.map(toStage);
  }

  /** What a project's page opens with (its reads go first in line, Database.readDb), once the user may view it. */
  private async page(user: AuthUser, projectId: string) {
    const { row, stages } = await this.repo.forPage(projectId, user.id);
    return { ...checkAccess(user, row, 'view'), stages };
  }

  /** Re-derives the project's status from its stages and stores it (DESIGN §1; the rule is the repository's). */
  async refreshStatus(projectId: string) {
    await this.repo.settleStatus(projectId);
    this.notifyChange(projectId);
  }

  setPipelineState = (projectId: string, pipelineState: 'idle' | 'running' | 'pausing' | 'paused') => this.repo.update(projectId, { pipelineState });

  async setModelConfig(projectId: string, config: unknown) {
    await this.repo.update(projectId, { modelConfig: config });
  }

  // ---- members (sharing) ----
  async members(user: AuthUser, projectId: string) {
    await this.access(user, projectId, 'view');
    return this.repo.members(projectId);
  }

  /** Adds a member by id (a user the owner already knows from another shared project). */
  async addMember(user: AuthUser, projectId: string, memberId: string, role: 'viewer' | 'editor') {
    const { project } = await this.access(user, projectId, 'own');
    const member = await this.repo.findUser({ id: memberId });
    if (!member) throw new AppError(400, 'validation_error', 'user_id: no such user', { fields: { user_id: 'Unknown user' } });
    if (member.id === project.ownerId) throw new AppError(400, 'validation_error', 'The owner already has full access', { fields: { user_id: 'Owner' } });
    await this.repo.upsertMember(projectId, member.id, role);
    this.notifyChange(projectId);
    return (await this.repo.members(projectId)).find((m) => m.user_id === member.id)!;
  }

  /**
   * Adds whoever has this email. The answer is the same whether or not an account has it (no id, no
   * name): every user owns projects, so a different answer would let anyone list the studio's accounts.
   */
  async addMemberByEmail(user: AuthUser, projectId: string, email: string, role: 'viewer' | 'editor') {
    await this.access(user, projectId, 'own'); // only the owner gets here: their own email is the one to refuse
    const normalized = email.trim().toLowerCase();
    if (normalized === user.email.toLowerCase()) {
      throw new AppError(400, 'validation_error', 'The owner already has full access', { fields: { email: 'Owner' } });
    }
    const member = await this.repo.findUser({ email: normalized });
    if (member) {
      await this.repo.upsertMember(projectId, member.id, role);
      this.notifyChange(projectId);
    }
    return { email: normalized, role };
  }

  async updateMember(user: AuthUser, projectId: string, memberId: string, role: 'viewer' | 'editor') {
    await this.access(user, projectId, 'own');
    const existing = (await this.repo.members(projectId)).find((m) => m.user_id === memberId);
    if (!existing) throw notFound('Member');
    await this.repo.upsertMember(projectId, memberId, role);
    this.notifyChange(projectId);
    return { ...existing, role };
  }

  async removeMember(user: AuthUser, projectId: string, memberId: string) {
    await this.access(user, projectId, 'own');
    if (!(await this.repo.deleteMember(projectId, memberId))) throw notFound('Member');
    this.accessChanged(projectId);
  }
}

/**
 * The one authorization rule for projects: no access at all answers 404 (a stranger must not learn
 * that the id exists); a member without enough rights gets 403.
 */
/** The user's access to a project read with their membership (`role`), or 404/403 as the user may know. */
export function checkAccess(user: AuthUser, row: { project: ProjectRow; role: 'viewer' | 'editor' | null } | undefined, need: Need): Access {
  if (!row) throw notFound('Project');
  return { project: row.project, role: allowedRole(user, { ownerId: row.project.ownerId, role: row.role }, need) };
}

type OwnerAndRole = { ownerId: string; role: 'viewer' | 'editor' | null };

/** The user's role on a project: its owner, else their membership if any. */
const roleIn = (row: OwnerAndRole | undefined, userId: string): AccessRole | undefined =>
  !row ? undefined : row.ownerId === userId ? 'owner' : (row.role ?? undefined);

/** The user's role on a project if it allows `need`; else the 404 or 403 to answer. */
function allowedRole(user: AuthUser, row: OwnerAndRole | undefined, need: Need): AccessRole {
  const role = roleIn(row, user.id);
  if (!role) throw notFound('Project');
  if (RANK[role] < NEED[need]) throw forbidden(role === 'viewer' ? 'You can view this project but not change it' : 'Only the owner can do this');
  return role;
}

type StatusFields = Pick<StageRow, 'status' | 'stale' | 'staleShotIds' | 'output'>;

/** A stage whose result is current: completed, with an output, nothing of it out of date. Skipped is not done. (In SQL, with the status rule that depends on it: `isDoneStage` in the repository.) */
export const isDone = (s: StatusFields) => s.status === 'completed' && s.output != null && !s.stale && !(s.staleShotIds ?? []).length;

export const mediaSettingsOf = (row: ProjectRow): MediaSettings => ({
  aspect_ratio: row.aspectRatio,
  resolution: row.resolution,
  fps: row.fps as MediaSettings['fps'],
  min_shot_s: row.minShotS,
  max_shot_s: row.maxShotS,
});

const progressOf = (done: number) => Math.round((done / STAGE_KEYS.length) * 100) / 100;

/** A stage's state, what a project_update carries of it. */
export const toStageState = (row: Pick<StageRow, 'stageType' | 'status' | 'stale' | 'staleShotIds' | 'statusReason' | 'currentRunId'>) => {
  const reason = reasonCode(row.statusReason);
  return {
    stage_type: row.stageType as StageKey,
    status: row.status as ProjectStage['status'],
    stale: row.stale,
    stale_shot_ids: row.staleShotIds ?? [],
    status_reason: row.statusReason,
    status_reason_code: reason.code,
    status_reason_params: reason.params,
    current_run_id: row.currentRunId,
  };
};

export const toStage = (row: StageRow): ProjectStage => ({
  id: row.id,
  ...toStageState(row),
  output: row.output ?? null,
  updated_at: row.updatedAt.toISOString(),
});

export const toProject = (row: ProjectRow, access: AccessRole, done: number, staleStages: StageKey[]): Project => ({
  id: row.id,
  name: row.name,
  original_topic: row.originalTopic,
  description: row.description,
  style: row.style,
  status: row.status,
  pipeline_state: row.pipelineState,
  owner_id: row.ownerId,
  access,
  progress: progressOf(done),
  stale_stages: staleStages,
  ...mediaSettingsOf(row),
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
});

export const toDetail = (row: ProjectRow, access: AccessRole, stages: StageRow[]): ProjectDetail => ({
  ...toProject(
    row,
    access,
    stages.filter(isDone).length,
    stages.filter((s) => s.stale || (s.staleShotIds ?? []).length > 0).map((s) => s.stageType as StageKey),
  ),
  stages: stages.map(toStage),
});
