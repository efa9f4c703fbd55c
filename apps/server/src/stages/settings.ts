import type { StageKey } from '@ai-story/contracts';
import type { AuthUser } from '../auth/service.ts';
import { AppError, notFound } from '../errors.ts';
import type { ProjectRepository } from '../projects/repository.ts';
import type { ProjectService } from '../projects/service.ts';
import { settingsOf, type StageDefinition } from './definition.ts';

/**
 * A stage's project-level settings (DESIGN §9: voice, clip method, export options): read with their
 * defaults, changed by a partial patch that the stage's own schema checks before anything is saved.
 */
export class StageSettingsService {
  constructor(
    private readonly projects: ProjectService,
    private readonly repo: ProjectRepository,
    private readonly definitionOf: (stage: StageKey) => StageDefinition | undefined,
  ) {}

  async get(user: AuthUser, projectId: string, stage: StageKey) {
    const { project } = await this.projects.access(user, projectId, 'view');
    return settingsOf(this.schemaOf(stage), project, stage);
  }

  async update(user: AuthUser, projectId: string, stage: StageKey, patch: Record<string, unknown>) {
    const { project } = await this.projects.access(user, projectId, 'edit');
    const schema = this.schemaOf(stage);
    const parsed = schema.safeParse({ ...settingsOf(schema, project, stage), ...patch });
    if (!parsed.success) {
      const fields = Object.fromEntries(parsed.error.issues.map((i) => [i.path.join('.') || 'body', i.message]));
      const [field, message] = Object.entries(fields)[0];
      throw new AppError(400, 'validation_error', `${field}: ${message}`, { fields });
    }
    await this.repo.update(projectId, { stageSettings: { ...project.stageSettings, [stage]: parsed.data } });
    this.projects.notifyChange(projectId);
    return parsed.data;
  }

  private schemaOf(stage: StageKey) {
    const schema = this.definitionOf(stage)?.settings;
    if (!schema) throw notFound('Settings of this stage');
    return schema;
  }
}
