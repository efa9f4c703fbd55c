import type { MediaItem, MediaItemEventType, ProviderType, RunUsage, StageKey } from '@ai-story/contracts';
import type { z } from 'zod';
import type { ProjectRow, StageRow, storyboardShots } from '../db/schema.ts';
import type { MediaTools } from '../media/ffmpeg.ts';
import type { RenderQueue } from '../media/render-queue.ts';
import type { MediaStore } from '../media/store.ts';
import type { ClientProvider, MediaUsage } from '../providers/service.ts';
import type { StoryboardRepository } from '../storyboard/repository.ts';

export type ShotRow = typeof storyboardShots.$inferSelect;

export interface StageContext {
  project: ProjectRow;
  stages: StageRow[];
  /** The project's storyboard, in order (empty for the stages up to the storyboard: `readsShots`). */
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

/** Something a stage changed in a model's output, said as a code with parameters (and in English for API clients). */
export interface StageNote {
  code: string;
  params?: Record<string, string | number>;
  message: string;
}

/** An output the model produced that cannot be used; the run fails with this message. */
export class StageOutputError extends Error {}

/** The repositories a stage may write through inside the run's final transaction. */
export interface StageStore {
  storyboards: StoryboardRepository;
}

/**
 * What every stage declares (the seed's open/closed rule: adding a stage means adding one definition,
 * nothing else changes).
 */
interface StageBase<Input, Output> {
  key: StageKey;
  input: z.ZodType<Input>;
  /** Input the caller may leave out, filled from the project (e.g. the rewrite's text from its topic). */
  defaultInput(ctx: StageContext): Record<string, unknown>;
  /** Stages whose output this one cannot do without: when the pipeline finds one skipped, it skips this one too. */
  needs?: StageKey[];
  /**
   * The stages whose saved output this one reads from `ctx.stages` (its own included, when it builds on
   * it). A run's start fetches only these: a finished project's outputs are tens of kilobytes, and
   * reading one not listed here throws.
   */
  reads?: readonly StageKey[];
  /** Checks the input against the project (throws StageInputError). */
  validate?(input: Input, ctx: StageContext): void;
  /**
   * The stage's project-level settings (voice, clip method, export options …), with defaults: kept in
   * `projects.stage_settings[key]`, edited at `…/stages/{stage}/settings/`, read with `settingsOf`.
   */
  settings?: z.ZodObject;
  /** Per-shot choices (a chosen image, a clip method for this shot …), kept in the shot's `media_settings[key]`. */
  shotSettings?: z.ZodObject;
  /** Writes the output where the project keeps it, inside the run's final transaction; answers it as saved (with ids). */
  persist(store: StageStore, projectId: string, output: Output): Promise<Output>;
  /**
   * A hand edit of the stage's output (PATCH …/stages/{stage}/): the output to save and its text, or a
   * StageInputError naming the field. Stages without it are edited through their own endpoints.
   */
  editOutput?(edit: Record<string, unknown>, current: Output | null): { output: Output; text: string };
}

/** An LLM stage: a template rendered to a prompt, a token stream, the text parsed into the output. */
export interface LlmStageDefinition<Input = any, Output = any> extends StageBase<Input, Output> {
  kind: 'llm';
  /** Fixed role instructions; the editable part is the template. */
  systemPrompt: string;
  /** The shipped template (Liquid), and the variables it may use, declared for the Prompts page. */
  defaultTemplate: string;
  templateVariables: TemplateVariable[];
  variables(input: Input, ctx: StageContext): Record<string, unknown>;
  responseFormat?: 'json_object';
  /** Rough size of the answer in tokens, for the time-left estimate. */
  expectedTokens?(input: Input): number;
  /** Structured stages stream items (`shot`, `movement`) as soon as each is complete. */
  items?: {
    key: string;
    event: 'shot' | 'movement';
    /** A streamed raw item as the event carries it, or null while it cannot be used yet. */
    normalize(raw: unknown, index: number, input: Input, ctx: StageContext): unknown | null;
  };
  /**
   * Turns the full text into the stage's output, or throws StageOutputError saying why not. `note`
   * tells the user what was adjusted on the way (an `info` event).
   */
  parseOutput(text: string, input: Input, ctx: StageContext, note?: (note: StageNote) => void): Output;
}

/** What a media stage's shot task may use besides its shot. */
export interface MediaServices {
  media: MediaStore;
  /** The studio's one fair queue for local CPU renders (MEDIA_CONCURRENCY); every local ffmpeg job goes through it. */
  renderQueue: RenderQueue;
  /** ffmpeg and ffprobe, or null when they are not installed (media stages then say what is missing). */
  mediaTools: MediaTools | null;
  /** The latest item this stage made for the project under `cacheKey` in any earlier run, for reuse. */
  previousItem(projectId: string, stage: StageKey, cacheKey: string): Promise<Record<string, unknown> | null>;
  /** Who started the run (media rows record it). */
  userId: string | null;
  /** The run the tasks belong to (usage rows name it). */
  runId: string | null;
  /**
   * Records one vendor call for the provider's usage and cost (never for the local methods); answers
   * the cost. A failed call is recorded too, with no units and its error code as `outcome`.
   */
  recordUsage(provider: ClientProvider, usage: MediaUsage): Promise<number>;
  /**
   * Counts one vendor call against the provider's limits, as LLM calls are; call the answer with the
   * call's outcome when it ends. Over a limit it throws a ProviderLimitError instead (no call made).
   */
  beginCall(provider: ClientProvider): Promise<(outcome: 'ok' | 'failed') => void>;
}

/** One vendor call counted against the provider's limits (MediaServices.beginCall); a cancel is no failure. */
export async function limitedCall<T>(services: Pick<MediaServices, 'beginCall'>, provider: ClientProvider, signal: AbortSignal, call: () => Promise<T>): Promise<T> {
  const end = await services.beginCall(provider);
  try {
    const result = await call();
    end('ok');
    return result;
  } catch (err) {
    end(signal.aborted ? 'ok' : 'failed');
    throw err;
  }
}

/** One shot's task in a media stage. */
export interface ShotTask<Input> {
  shot: ShotRow;
  input: Input;
  ctx: StageContext;
  /** Aborted on cancel and shutdown: stop work, kill child processes, leave no half-written file. */
  signal: AbortSignal;
  /** The providers to try, in order (empty for stages that work locally). */
  providers: ClientProvider[];
  services: MediaServices;
  /** Reports the task's own progress (0–100) and what it is doing. */
  progress(percent: number, message?: string): void;
  /** Reports the task's place in the render queue while it waits (1 = next). */
  waiting(position: number): void;
}

/**
 * A media stage (DESIGN §9): per-shot tasks run with bounded concurrency, each finished item saved as
 * it finishes, then an optional finishing step (the final encode).
 */
export interface MediaStageDefinition<Input = any, Item extends MediaItem = MediaItem, Output = any> extends StageBase<Input, Output> {
  kind: 'media';
  /** The provider type its tasks use, or null when the work is local only. */
  providerType: Exclude<ProviderType, 'llm'> | null;
  /**
   * The method that needs no provider (the offline image model, espeak-ng, local camera motion):
   * used when the input asks for it, or when no provider of the type is available and none was named.
   * `simulated` labels a stand-in for a model (DESIGN §9); local camera motion is real, not simulated.
   */
  local?: { name: string; model: string; simulated: boolean; preferred?(input: Input, ctx: StageContext): boolean };
  /** The event that carries one finished item. */
  itemEvent: MediaItemEventType;
  /** Renders with ffmpeg: without it a run is refused up front, saying what to install. */
  usesFfmpeg?: boolean;
  /** How many shot tasks may run at once. */
  concurrency(ctx: StageContext): number;
  /** The shots this run works on (all, or those the input names). */
  shots(input: Input, ctx: StageContext): ShotRow[];
  /** Does one shot's task; answers its finished items (the engine saves and sends each). */
  runShot(task: ShotTask<Input>): Promise<Item[]>;
  /**
   * An optional finishing step after every shot (e.g. the final encode); what it answers goes to `output`.
   * Its `progress(percent, step)` reports the step's own percent and a step code the web app words.
   */
  finish?(step: Omit<ShotTask<Input>, 'shot' | 'providers' | 'waiting'> & { items: Item[] }): Promise<Record<string, unknown>>;
  /**
   * Called once the providers are chosen and before the run exists (a paid run's budget check): throws
   * StageInputError to refuse the run before any vendor is called. `providers` is empty for the local method.
   */
  beforeStart?(input: Input, ctx: StageContext, providers: { name: string; pricePerUnit: number; isSimulated: boolean }[]): void;
  /** The run's usage and cost from its items (default: none). */
  usage?(items: Item[], durationMs: number): RunUsage;
  /** The stage's output from this run's items, the shots that failed, and what the finishing step made. */
  output(items: Item[], failedShotIds: string[], input: Input, ctx: StageContext, finished?: Record<string, unknown>): Output;
}

export type StageDefinition = LlmStageDefinition | MediaStageDefinition;

/** A stage's settings for a project, its defaults filled in (a stored value that no longer parses falls back to them). */
export function settingsOf<S extends z.ZodObject>(schema: S, project: ProjectRow, stage: StageKey): z.infer<S> {
  const parsed = schema.safeParse(project.stageSettings?.[stage] ?? {});
  return parsed.success ? parsed.data : schema.parse({});
}

/** A shot's own choices for a stage, defaults filled in. */
export function shotSettingsOf<S extends z.ZodObject>(schema: S, shot: ShotRow, stage: StageKey): z.infer<S> {
  const parsed = schema.safeParse(shot.mediaSettings?.[stage] ?? {});
  return parsed.success ? parsed.data : schema.parse({});
}
