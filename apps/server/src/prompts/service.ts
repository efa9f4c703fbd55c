import type {
  ProjectPromptSet,
  PromptSet,
  PromptSetDetail,
  PromptTemplate,
  PromptTemplateVersion,
  StageKey,
  TemplateVariable,
  TestTemplateResult,
} from '@ai-story/contracts';
import type { AuthUser } from '../auth/service.ts';
import { AppError, conflict, forbidden, invalid, notFound } from '../errors.ts';
import type { ProjectService } from '../projects/service.ts';
import { TEMPLATED_STAGES } from '../stages/index.ts';
import type { PromptRepository, PromptSetRow, PromptTemplateRow, PromptTemplateVersionRow, TemplateSeed } from './repository.ts';
import type { TemplateRenderer } from './render-pool.ts';
import { TemplateError, TemplateLimitError } from './render.ts';
import { checkTemplate, tryTemplate } from './template-check.ts';
import { ReadCache } from '../read-cache.ts';

export const SHIPPED_SET = { name: '默认模板 / Default', description: '随工作室提供的模板 / The templates shipped with the studio' };

/** What the run engine renders for a stage, and which saved template (and version) it came from. */
export interface StageTemplate {
  content: string;
  template_id: string | null;
  version: number | null;
}

const definitions = () => Object.values(TEMPLATED_STAGES).filter((d) => d !== undefined);

/** The variables a stage hands to its template: the stage definition is the one source. */
function declaredFor(stage: StageKey, stored?: unknown): TemplateVariable[] {
  return TEMPLATED_STAGES[stage]?.templateVariables ?? (Array.isArray(stored) ? (stored as TemplateVariable[]) : []);
}

const shippedTemplates = (): TemplateSeed[] =>
  definitions().map((d) => ({ stage: d.key, content: d.defaultTemplate, variables: d.templateVariables }));

const isAdmin = (user: AuthUser) => user.role === 'admin';
/** A template edited on another instance (scale-out mode) is used from this long after. */
const TEMPLATE_CACHE_MS = 5_000;

/**
 * Prompt template sets (提示词管理). Shared sets (no owner: the shipped one and any an admin shares)
 * are seen by everyone and changed only by admins; a user's own sets are theirs alone — to anyone else
 * they do not exist (404). Exactly one shared set is the default, which every project without a
 * choice of its own follows.
 */
export class PromptService {
  /** Every run start reads its template: shared for a few seconds, dropped on every write made here. */
  private readonly templates = new ReadCache<StageTemplate>(TEMPLATE_CACHE_MS);

  constructor(
    private readonly repo: PromptRepository,
    private readonly projects: ProjectService,
    private readonly renderer: TemplateRenderer,
  ) {
    renderer.trust(shippedTemplates().map((t) => t.content));
  }

  /** Start-up: the shipped set, a default, and a template for every stage in every set. */
  ensureShipped() {
    return this.repo.ensureShipped(SHIPPED_SET, shippedTemplates());
  }

  /**
   * The template a run of `stage` renders for this project: the project's set's, else the default
   * set's, else the stage's shipped template (e.g. before start-up seeding, or a set since deleted).
   */
  templateFor(project: { id: string; promptSetId: string | null }, stage: StageKey): Promise<StageTemplate> {
    return this.templates.get(`${project.promptSetId ?? 'default'}:${stage}`, () => this.loadTemplate(project.promptSetId, stage));
  }

  private async loadTemplate(setId: string | null, stage: StageKey): Promise<StageTemplate> {
    const row = await this.repo.templateFor(setId, stage);
    if (row) return { content: row.content, template_id: row.id, version: row.version };
    const definition = TEMPLATED_STAGES[stage];
    if (!definition) throw new Error(`No stage definition for ${stage}`);
    return { content: definition.defaultTemplate, template_id: null, version: null };
  }

  /**
   * The prompt of a run: the project's template for `stage` rendered with the stage's variables. A
   * template that cannot render is the user's to fix (400); one stopped by a limit answers 422.
   */
  async renderFor(project: { id: string; promptSetId: string | null }, stage: StageKey, variables: Record<string, unknown>): Promise<string> {
    const template = await this.templateFor(project, stage);
    const name = `the ${stage} prompt template${template.version ? ` (version ${template.version})` : ''}`;
    try {
      return await this.renderer.render(template.content, variables, name);
    } catch (err) {
      if (err instanceof TemplateLimitError) throw limitStopped(err, 'template', stage, template.template_id);
      if (err instanceof TemplateError) throw new AppError(400, 'validation_error', err.message, { fields: { template: err.message } });
      throw err;
    }
  }

  // ---- sets ----
  async listSets(user: AuthUser, page: number, pageSize: number, search?: string) {
    const { count, rows } = await this.repo.listSets(user.id, page, pageSize, search);
    return { count, results: rows.map((r) => toSet(r, user)) };
  }

  async getSet(user: AuthUser, id: string): Promise<PromptSetDetail> {
    const set = await this.visibleSet(user, id);
    return this.detail(set, user);
  }

  async createSet(user: AuthUser, input: { name: string; description: string; copy_from?: string; shared: boolean }): Promise<PromptSetDetail> {
    if (input.shared && !isAdmin(user)) throw forbidden('Only an admin can create a shared prompt set');
    const source = input.copy_from ? await this.repo.findSet(input.copy_from) : await this.repo.findDefaultSet();
    if (input.copy_from && (!source || !visible(source, user))) throw invalid('copy_from', 'No such prompt set');
    const copied = new Map(source ? (await this.repo.templatesOf(source.id)).map((t) => [t.stage, t.content]) : []);
    const templates = shippedTemplates().map((t) => ({ ...t, content: copied.get(t.stage) ?? t.content }));
    const set = await this.repo.createSet(
      { name: input.name, description: input.description, ownerId: input.shared ? null : user.id },
      templates,
      user.id,
    );
    return this.detail(set, user);
  }

  async updateSet(user: AuthUser, id: string, patch: { name?: string; description?: string; is_default?: boolean }): Promise<PromptSetDetail> {
    const set = await this.editableSet(user, id);
    const makeDefault = patch.is_default !== undefined && patch.is_default !== set.isDefault;
    if (makeDefault) {
      if (!isAdmin(user)) throw forbidden('Only an admin can choose the default prompt set');
      if (!patch.is_default) throw conflict('There is always one default set: mark another set as the default instead');
      // Everyone's projects follow the default, so everyone must be able to see it.
      if (set.ownerId !== null) throw invalid('is_default', 'Only a shared set can be the default; create a shared copy of this set first');
    }
    if (patch.name !== undefined || patch.description !== undefined) {
      await this.repo.updateSet(id, { name: patch.name, description: patch.description });
    }
    if (makeDefault) {
      await this.repo.markDefault(id);
      this.templates.clear();
    }
    return this.getSet(user, id);
  }

  async removeSet(user: AuthUser, id: string) {
    await this.editableSet(user, id);
    const result = await this.repo.deleteSet(id);
    this.templates.clear();
    if (result === 'missing') throw notFound('Prompt set');
    if (result === 'default') throw conflict('The default prompt set cannot be deleted; mark another set as the default first');
  }

  // ---- templates ----
  async listTemplates(user: AuthUser, query: { set_id?: string; stage?: StageKey; page: number; page_size: number }) {
    if (query.set_id) await this.visibleSet(user, query.set_id);
    const { count, rows } = await this.repo.listTemplates(user.id, { setId: query.set_id, stage: query.stage }, query.page, query.page_size);
    return { count, results: rows.map((r) => toTemplate(r.template)) };
  }

  async getTemplate(user: AuthUser, id: string): Promise<PromptTemplate> {
    return toTemplate((await this.visibleTemplate(user, id)).template);
  }

  /** Saves new content as the template's next version, once it parses and reads only declared variables. */
  async saveTemplate(user: AuthUser, id: string, content: string): Promise<PromptTemplate> {
    const { template } = await this.editableTemplate(user, id);
    return toTemplate(await this.save(user, template, content));
  }

  async versions(user: AuthUser, id: string, page: number, pageSize: number) {
    await this.visibleTemplate(user, id);
    const { count, rows } = await this.repo.versions(id, page, pageSize);
    return { count, results: rows.map(toVersion) };
  }

  async version(user: AuthUser, id: string, version: number): Promise<PromptTemplateVersion> {
    await this.visibleTemplate(user, id);
    const row = await this.repo.version(id, version);
    if (!row) throw notFound('Template version');
    return toVersion(row);
  }

  /** Restoring never rewrites history: the old content becomes the newest version. */
  async restore(user: AuthUser, id: string, version: number): Promise<PromptTemplate> {
    const { template } = await this.editableTemplate(user, id);
    const old = await this.repo.version(id, version);
    if (!old) throw notFound('Template version');
    return toTemplate(await this.save(user, template, old.content));
  }

  /** Renders the given (or saved) content with the stage's samples, overridden by `variables`; changes nothing. */
  async test(user: AuthUser, id: string, body: { content?: string; variables: Record<string, unknown> }): Promise<TestTemplateResult> {
    const { template, set } = await this.visibleTemplate(user, id);
    const name = `the ${template.stage} template of “${set.name}”`;
    try {
      return await tryTemplate(body.content ?? template.content, declaredFor(template.stage as StageKey, template.variables), body.variables, (content, data) =>
        this.renderer.render(content, data, name),
      );
    } catch (err) {
      if (err instanceof TemplateLimitError) throw limitStopped(err, 'content', template.stage, template.id);
      throw err;
    }
  }

  // ---- a project's choice ----
  async projectPromptSet(user: AuthUser, projectId: string): Promise<ProjectPromptSet> {
    await this.projects.allows(user, projectId, 'view');
    const set = await this.repo.projectPromptSet(projectId);
    return { prompt_set_id: set?.id ?? null, prompt_set_name: set?.name ?? null };
  }

  async setProjectPromptSet(user: AuthUser, projectId: string, setId: string | null): Promise<ProjectPromptSet> {
    const { project } = await this.projects.access(user, projectId, 'edit');
    if (setId) {
      const set = await this.repo.findSet(setId);
      if (!set || !visible(set, user)) throw invalid('prompt_set_id', 'No such prompt set');
      // A private set is its owner's alone: on someone else's project (an editor's set on the owner's
      // project) the owner and the other members could neither open nor change the prompts it runs.
      if (set.ownerId !== null && set.ownerId !== project.ownerId) {
        throw invalid('prompt_set_id', "Only a shared prompt set or one of the project owner's own sets can be used here");
      }
    }
    await this.repo.setProjectPromptSet(projectId, setId);
    return this.projectPromptSet(user, projectId);
  }

  // ---- rules ----
  private async save(user: AuthUser, template: PromptTemplateRow, content: string) {
    const stage = template.stage as StageKey;
    const declared = declaredFor(stage, template.variables);
    const check = checkTemplate(content, declared);
    if (check.error) throw invalid('content', check.error);
    if (check.unknown.length > 0) {
      const names = check.unknown.map((n) => `{{ ${n} }}`).join(', ');
      const message = `Unknown variable${check.unknown.length > 1 ? 's' : ''} ${names}: the ${stage} stage declares ${declared.map((v) => v.name).join(', ') || 'none'}`;
      throw new AppError(400, 'validation_error', `content: ${message}`, { fields: { content: message }, unknown: check.unknown });
    }
    const saved = await this.repo.saveVersion(template.id, content, declared, user.id);
    this.templates.clear();
    return saved;
  }

  private async visibleSet(user: AuthUser, id: string) {
    const set = await this.repo.findSet(id);
    if (!set || !visible(set, user)) throw notFound('Prompt set');
    return set;
  }

  private async editableSet(user: AuthUser, id: string) {
    const set = await this.visibleSet(user, id);
    if (!editable(set, user)) throw forbidden('Only an admin can change a shared prompt set; create your own set to customise it');
    return set;
  }

  private async visibleTemplate(user: AuthUser, id: string) {
    const found = await this.repo.findTemplate(id);
    if (!found || !visible(found.set, user)) throw notFound('Prompt template');
    return found;
  }

  private async editableTemplate(user: AuthUser, id: string) {
    const found = await this.visibleTemplate(user, id);
    if (!editable(found.set, user)) throw forbidden('Only an admin can change a shared prompt set; create your own set to customise it');
    return found;
  }

  private async detail(set: PromptSetRow, user: AuthUser): Promise<PromptSetDetail> {
    const order = new Map(definitions().map((d, i) => [d.key as string, i]));
    const templates = (await this.repo.templatesOf(set.id)).filter((t) => order.has(t.stage));
    templates.sort((a, b) => order.get(a.stage)! - order.get(b.stage)!);
    return { ...toSet(set, user), templates: templates.map(toTemplate) };
  }
}

/** A render a limit stopped: the template is at fault, not the request's shape and not the server (422). */
const limitStopped = (err: TemplateLimitError, field: string, stage: string, templateId: string | null) =>
  new AppError(422, 'validation_error', err.message, { fields: { [field]: err.message }, template_id: templateId, stage, limit: err.limit });

const visible = (set: PromptSetRow, user: AuthUser) => set.ownerId === null || set.ownerId === user.id;
const editable = (set: PromptSetRow, user: AuthUser) => (set.ownerId === null ? isAdmin(user) : set.ownerId === user.id);

const toSet = (row: PromptSetRow, user: AuthUser): PromptSet => ({
  id: row.id,
  name: row.name,
  description: row.description,
  is_default: row.isDefault,
  shared: row.ownerId === null,
  owner_id: row.ownerId,
  editable: editable(row, user),
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
});

const toTemplate = (row: PromptTemplateRow): PromptTemplate => ({
  id: row.id,
  set_id: row.setId,
  stage: row.stage as StageKey,
  content: row.content,
  variables: declaredFor(row.stage as StageKey, row.variables),
  version: row.version,
  updated_at: row.updatedAt.toISOString(),
});

const toVersion = (row: PromptTemplateVersionRow): PromptTemplateVersion => ({
  id: row.id,
  template_id: row.templateId,
  version: row.version,
  content: row.content,
  variables: Array.isArray(row.variables) ? (row.variables as TemplateVariable[]) : [],
  created_by: row.createdBy,
  created_at: row.createdAt.toISOString(),
});
