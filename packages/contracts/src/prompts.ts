import { z } from 'zod';
import { PageQuery, Timestamp } from './common.ts';
import { StageKey } from './stages.ts';

/**
 * A template is a prompt, not a document: the shipped ones are about 1,000 characters, so 20,000
 * leaves room for long examples while keeping parse and render costs small.
 */
export const MAX_TEMPLATE_CHARS = 20_000;

export const TemplateVariableType = z.enum(['string', 'number', 'boolean', 'list']);
export type TemplateVariableType = z.infer<typeof TemplateVariableType>;

/** A variable a stage hands to its template; the list is the stage's, a template cannot add to it. */
export const TemplateVariable = z.object({
  name: z.string(),
  type: TemplateVariableType,
  description: z.string(),
  /** Used by previews and `…/test/` when the caller gives no value. */
  sample: z.unknown(),
});
export type TemplateVariable = z.infer<typeof TemplateVariable>;

export const PromptSet = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  /** The set every project without a choice of its own uses; exactly one set is the default. */
  is_default: z.boolean(),
  /** Shared sets (the shipped one, and any an admin shares) are seen by everyone and changed by admins. */
  shared: z.boolean(),
  /** Null for shared sets. */
  owner_id: z.string().nullable(),
  /** Whether the asking user may change the set and its templates. */
  editable: z.boolean(),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export type PromptSet = z.infer<typeof PromptSet>;

export const PromptTemplate = z.object({
  id: z.string(),
  set_id: z.string(),
  stage: StageKey,
  content: z.string(),
  variables: z.array(TemplateVariable),
  /** The current version; every save adds one. */
  version: z.number().int(),
  updated_at: Timestamp,
});
export type PromptTemplate = z.infer<typeof PromptTemplate>;

export const PromptSetDetail = PromptSet.extend({ templates: z.array(PromptTemplate) });
export type PromptSetDetail = z.infer<typeof PromptSetDetail>;

export const PromptTemplateVersion = z.object({
  id: z.string(),
  template_id: z.string(),
  version: z.number().int(),
  content: z.string(),
  variables: z.array(TemplateVariable),
  created_by: z.string().nullable(),
  created_at: Timestamp,
});
export type PromptTemplateVersion = z.infer<typeof PromptTemplateVersion>;

const SetName = z.string().trim().min(1).max(100);
const SetDescription = z.string().max(2_000);

export const CreatePromptSetBody = z.object({
  name: SetName,
  description: SetDescription.default(''),
  /** The set whose templates the new one starts from; the default set when left out. */
  copy_from: z.uuid().optional(),
  /** Admins only: a shared set is seen by everyone (and may become the default). */
  shared: z.boolean().default(false),
});
export type CreatePromptSetInput = z.input<typeof CreatePromptSetBody>;

/** PATCH changes only what it names; `is_default` only by admins, and only `true` (mark another set to move it). */
export const UpdatePromptSetBody = z.object({ name: SetName, description: SetDescription, is_default: z.boolean() }).partial();
export type UpdatePromptSetInput = z.input<typeof UpdatePromptSetBody>;

export const TemplateContent = z
  .string()
  .max(MAX_TEMPLATE_CHARS)
  .refine((s) => s.trim().length > 0, { message: 'The template is empty' });

export const UpdateTemplateBody = z.object({ content: TemplateContent });
export type UpdateTemplateInput = z.input<typeof UpdateTemplateBody>;

export const TestTemplateBody = z.object({
  /** Unsaved content to try; the saved content when left out. */
  content: TemplateContent.optional(),
  /** Values that override the declared samples. */
  variables: z.record(z.string().max(100), z.unknown()).default({}),
});
export type TestTemplateInput = z.input<typeof TestTemplateBody>;

export const TestTemplateResult = z.object({
  rendered: z.string(),
  /** Declared but neither sampled nor given, or used but given empty. */
  missing: z.array(z.string()),
  /** Used by the template but not declared for its stage (a save would be refused). */
  unknown: z.array(z.string()),
  /** A syntax error, a forbidden tag (include/render/layout) or a render failure, in words; null when it rendered. */
  error: z.string().nullable(),
});
export type TestTemplateResult = z.infer<typeof TestTemplateResult>;

export const SetProjectPromptSetBody = z.object({ prompt_set_id: z.uuid().nullable() });
export type SetProjectPromptSetInput = z.input<typeof SetProjectPromptSetBody>;

/** A project's choice of prompt set; null means it follows the default set. */
export const ProjectPromptSet = z.object({ prompt_set_id: z.string().nullable(), prompt_set_name: z.string().nullable() });
export type ProjectPromptSet = z.infer<typeof ProjectPromptSet>;

export const PromptSetQuery = PageQuery;
export const PromptTemplateQuery = PageQuery.omit({ search: true }).extend({
  set_id: z.uuid().optional(),
  stage: StageKey.optional(),
});
