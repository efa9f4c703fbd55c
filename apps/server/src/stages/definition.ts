import type { StageKey } from '@ai-story/contracts';
import type { z } from 'zod';
import type { Db } from '../db/client.ts';
import type { ProjectRow, StageRow, storyboardShots } from '../db/schema.ts';

export type ShotRow = typeof storyboardShots.$inferSelect;

export interface StageContext {
  project: ProjectRow;
  stages: StageRow[];
  /** The project's storyboard, in order. */
  shots: ShotRow[];
}

/** The input cannot be run (e.g. camera before any storyboard); answered as a 400 naming the field. */
export class StageInputError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

export interface TemplateVariable {
  name: string;
  type: 'string' | 'number' | 'boolean' | 'list';
  description: string;
  /** A sample value for previews and `…/test/`. */
  sample: unknown;
}

/** An output the model produced that cannot be used; the run fails with this message. */
export class StageOutputError extends Error {}

/**
 * Everything the run engine needs to know of one stage (the seed's open/closed rule: adding a stage
 * means adding one of these, nothing else changes).
 */
export interface StageDefinition<Input = any, Output = any> {
  key: StageKey;
  input: z.ZodType<Input>;
  /** Input the caller may leave out, filled from the project (e.g. the rewrite's text from its topic). */
  defaultInput(ctx: StageContext): Record<string, unknown>;
  /** Fixed role instructions; the editable part is the template. */
  systemPrompt: string;
  /** The shipped template (Liquid), and the variables it may use, declared for the Prompts page. */
  defaultTemplate: string;
  templateVariables: TemplateVariable[];
  variables(input: Input, ctx: StageContext): Record<string, unknown>;
  responseFormat?: 'json_object';
  /** Rough size of the answer in tokens, for the time-left estimate. */
  expectedTokens?(input: Input): number;
  /** Checks the input against the project (throws StageInputError). */
  validate?(input: Input, ctx: StageContext): void;
  /** Structured stages stream items (`shot`, `movement`) as soon as each is complete. */
  items?: {
    key: string;
    event: 'shot' | 'movement';
    /** A streamed raw item as the event carries it, or null while it cannot be used yet. */
    normalize(raw: unknown, index: number, input: Input, ctx: StageContext): unknown | null;
    /** The saved items this run produced (the saved output may hold others, e.g. movements of other shots). */
    producedBy?(saved: Output, parsed: Output): unknown[];
  };
  /** Turns the full text into the stage's output, or throws StageOutputError saying why not. */
  parseOutput(text: string, input: Input, ctx: StageContext): Output;
  /** Writes the output where the project keeps it, inside the run's final transaction; answers it as saved (with ids). */
  persist(tx: Db, projectId: string, output: Output): Promise<Output>;
}
