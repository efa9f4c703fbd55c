import type { ModelConfig, Run, RunUsage, StageKey } from '@ai-story/contracts';
import { and, eq, inArray } from 'drizzle-orm';
import type { FastifyBaseLogger } from 'fastify';
import type { AuthUser } from '../auth/service.ts';
import type { Config } from '../config.ts';
import type { Db } from '../db/client.ts';
import { projectStages, stageRuns, type RunRow } from '../db/schema.ts';
import { AppError, conflict, notFound } from '../errors.ts';
import { renderTemplate, TemplateError } from '../prompts/render.ts';
import type { ProjectRepository } from '../projects/repository.ts';
import type { ProjectService } from '../projects/service.ts';
import { LlmError, streamChat } from '../providers/llm-client.ts';
import type { ClientProvider, ProviderService } from '../providers/service.ts';
import { StageInputError, StageOutputError, type StageContext, type StageDefinition } from '../stages/definition.ts';
import { completedItems } from '../stages/json-output.ts';
import type { StoryboardRepository } from '../storyboard/repository.ts';
import type { PromptService } from '../prompts/service.ts';
import { STAGES } from '../stages/index.ts';
import type { EventLog } from './event-log.ts';
import type { RunRepository } from './repository.ts';

/** Tokens closer together than this share one event: fewer bytes, and no delay for a lone token. */
const COALESCE_MS = 25;
const PROGRESS_EVERY_MS = 500;
/** Finished runs stay replayable from memory this long; later the database serves them. */
const KEEP_FINISHED_MS = 5 * 60_000;

export const runKey = (runId: string) => `run:${runId}`;
export const projectKey = (projectId: string) => `project:${projectId}`;

interface ActiveRun {
  row: RunRow;
  stage: StageKey;
  definition: StageDefinition;
  input: unknown;
  ctx: StageContext;
  /** Structured items already sent as `shot` / `movement` events. */
  itemsSent: number;
  abort: AbortController;
  finalStatus?: 'completed' | 'failed' | 'cancelled' | 'interrupted';
  /** Why the run was stopped from outside: a user's cancel or the server shutting down. */
  stopReason?: 'cancelled' | 'interrupted';
  text: string;
  pending: string;
  tokens: number;
  expectedTokens: number | null;
  startedAt: number;
  lastFlushAt: number;
  lastProgressAt: number;
  flushTimer?: NodeJS.Timeout;
  checkpointedLength: number;
  chunkSeq: number;
  provider?: ClientProvider;
  finished: Promise<void>;
}

export type RunFinishedListener = (run: { runId: string; projectId: string; stage: StageKey; status: 'completed' | 'failed' | 'cancelled' | 'interrupted' }) => unknown;

export interface RunDeps {
  db: Db;
  repo: RunRepository;
  projects: ProjectService;
  projectRepo: ProjectRepository;
  storyboards: StoryboardRepository;
  prompts: PromptService;
  providers: ProviderService;
  runLog: EventLog;
  projectLog: EventLog;
  config: Config;
  log: FastifyBaseLogger;
}

/**
 * The run engine (DESIGN §4). A run lives apart from the request that started it: it streams from
 * the provider into an event log that any number of clients follow and resume, checkpoints its text
 * at most once a second, and saves the result in one transaction at the end.
 */
export class RunService {
  private readonly active = new Map<string, ActiveRun>();
  private checkpointTimer?: NodeJS.Timeout;
  private readonly finishedListeners = new Set<RunFinishedListener>();

  constructor(private readonly d: RunDeps) {}

  activeRun = (runId: string) => this.active.get(runId);

  /** The text a run has sent in events so far (what is still coalescing goes out in the next event). */
  sentText(runId: string): string {
    const run = this.active.get(runId);
    return run ? run.text.slice(0, run.text.length - run.pending.length) : '';
  }

  /** Told when a run has ended and its result is saved (the pipeline moves on from here). */
  onFinished(listener: RunFinishedListener) {
    this.finishedListeners.add(listener);
    return () => this.finishedListeners.delete(listener);
  }
  get activeCount() {
    return this.active.size;
  }

  async start(user: AuthUser, projectId: string, stage: StageKey, body: { input: Record<string, unknown>; provider_id?: string }): Promise<Run> {
    const { project } = await this.d.projects.access(user, projectId, 'edit');
    const definition = STAGES[stage];
    if (!definition) {
      throw new AppError(400, 'validation_error', `The ${stage} stage is not available yet`, { fields: { stage: 'Not available yet' } });
    }
    const ctx: StageContext = { project, stages: await this.d.projectRepo.stages(projectId), shots: await this.d.storyboards.shots(projectId) };
    const parsed = definition.input.safeParse({ ...definition.defaultInput(ctx), ...stripUndefined(body.input) });
    if (!parsed.success) {
      const fields = Object.fromEntries(parsed.error.issues.map((i) => [['input', ...i.path].join('.'), i.message]));
      const [field, message] = Object.entries(fields)[0];
      throw new AppError(400, 'validation_error', `${field}: ${message}`, { fields });
    }
    const input = parsed.data;
    try {
      definition.validate?.(input, ctx);
    } catch (err) {
      if (err instanceof StageInputError) throw new AppError(400, 'validation_error', err.message, { fields: { [err.field]: err.message } });
      throw err;
    }

    const existing = await this.d.repo.findActive(projectId, stage);
    if (existing) throw conflict('This stage is already running', { active_run_id: existing.id });

    const selection = await this.d.providers.candidatesFor(stage, {
      providerId: body.provider_id,
      projectConfig: project.modelConfig as ModelConfig,
    });
    if (selection.order.length === 0) {
      const why = selection.skipped.map((s) => s.reason).join('; ');
      throw conflict(`No model provider is available for this stage${why ? ` (${why})` : ''}; an admin can add or enable one`);
    }

    let prompt: string;
    try {
      // The project's template set (or the default set) decides the words; the exact prompt is kept on the run.
      const template = await this.d.prompts.templateFor(project, stage);
      prompt = await renderTemplate(template.content, definition.variables(input, ctx));
    } catch (err) {
      if (err instanceof TemplateError) throw new AppError(400, 'validation_error', err.message, { fields: { template: err.message } });
      throw err;
    }

    const first = selection.order[0];
    const inserted = await this.d.repo.insertActive({
      projectId,
      stage,
      status: 'running',
      input,
      prompt,
      providerId: first.id,
      providerName: first.name,
      model: first.modelName,
      isSimulated: first.isSimulated,
      createdBy: user.id,
      startedAt: new Date(),
    });
    if (inserted === 'conflict') {
      const active = await this.d.repo.findActive(projectId, stage);
      throw conflict('This stage is already running', { active_run_id: active?.id });
    }
    await this.d.projectRepo.updateStage(projectId, stage, { status: 'running', currentRunId: inserted.id, statusReason: null });

    const run: ActiveRun = {
      row: inserted,
      stage,
      definition,
      input,
      ctx,
      itemsSent: 0,
      abort: new AbortController(),
      text: '',
      pending: '',
      tokens: 0,
      expectedTokens: definition.expectedTokens?.(input) ?? null,
      startedAt: Date.now(),
      lastFlushAt: 0,
      lastProgressAt: 0,
      checkpointedLength: 0,
      chunkSeq: 0,
      finished: Promise.resolve(),
    };
    this.active.set(inserted.id, run);
    this.emit(run, { type: 'stage_update', status: 'running' });
    this.emit(run, { type: 'info', message: `Generating with ${first.name} (${first.modelName})${first.isSimulated ? ' — simulated offline demo' : ''}` });
    await this.d.projects.refreshStatus(projectId);

    const candidates = await Promise.all(selection.order.map((p) => this.d.providers.clientProvider(p)));
    run.finished = this.execute(run, candidates, prompt).catch((err) => this.d.log.error({ err, runId: run.row.id }, 'run crashed'));
    return toRun(inserted);
  }

  /** Stops a run at the user's request; the text written so far is kept. */
  async cancel(user: AuthUser, runId: string): Promise<Run> {
    const row = await this.d.repo.find(runId);
    if (!row) throw notFound('Run');
    await this.d.projects.access(user, row.projectId, 'edit');
    const run = this.active.get(runId);
    if (!run) {
      if (row.status === 'running' || row.status === 'queued') throw conflict('This run is owned by another server instance');
      return toRun(row); // already finished: cancelling is a no-op, not an error
    }
    run.stopReason = 'cancelled';
    run.abort.abort();
    await run.finished;
    return toRun((await this.d.repo.find(runId))!);
  }

  async get(user: AuthUser, runId: string): Promise<Run> {
    const row = await this.d.repo.find(runId);
    if (!row) throw notFound('Run');
    await this.d.projects.access(user, row.projectId, 'view');
    return this.withLiveText(row);
  }

  async history(user: AuthUser, projectId: string, stage: StageKey, page: number, pageSize: number) {
    await this.d.projects.access(user, projectId, 'view');
    const { count, rows } = await this.d.repo.history(projectId, stage, page, pageSize);
    return { count, results: rows.map((r) => this.withLiveText(r)) };
  }

  /** Makes a past run's output the stage's current output again (recorded as a new version). */
  async restore(user: AuthUser, runId: string): Promise<Run> {
    const row = await this.d.repo.find(runId);
    if (!row) throw notFound('Run');
    await this.d.projects.access(user, row.projectId, 'edit');
    if (!row.output) throw conflict('Only a completed run with an output can be restored');
    return this.saveVersion(user, row.projectId, row.stage as StageKey, row.output, 'restore', row.text);
  }

  /** Saves a hand edit of a stage's output as a new version in the history. */
  async editOutput(user: AuthUser, projectId: string, stage: StageKey, output: Record<string, unknown>): Promise<Run> {
    await this.d.projects.access(user, projectId, 'edit');
    const definition = STAGES[stage];
    if (!definition) throw new AppError(400, 'validation_error', `The ${stage} stage cannot be edited yet`, { fields: { stage: 'Not available yet' } });
    if (stage === 'rewrite') {
      const text = output.rewritten_text;
      if (typeof text !== 'string' || !text.trim()) throw new AppError(400, 'validation_error', 'output.rewritten_text: required', { fields: { 'output.rewritten_text': 'Required' } });
      if (text.length > 100_000) throw new AppError(400, 'validation_error', 'output.rewritten_text: too long', { fields: { 'output.rewritten_text': 'At most 100000 characters' } });
      const current = await this.d.projectRepo.stage(projectId, stage);
      const original = (current?.output as { original_text?: string } | null)?.original_text ?? (typeof output.original_text === 'string' ? output.original_text : '');
      return this.saveVersion(user, projectId, stage, { original_text: original, rewritten_text: text }, 'edit', text);
    }
    throw new AppError(400, 'validation_error', `Editing ${stage} goes through its own endpoints`, { fields: { stage: 'Use the stage endpoints' } });
  }

  private async saveVersion(user: AuthUser, projectId: string, stage: StageKey, output: unknown, source: 'edit' | 'restore', text: string) {
    if (await this.d.repo.findActive(projectId, stage)) throw conflict('Wait for the running generation to finish, or stop it first');
    const definition = STAGES[stage];
    const row = await this.d.db.transaction(async (tx) => {
      // Structured outputs live in their own tables (shots, movements): put the version back there too.
      const saved = definition && stage !== 'rewrite' ? await definition.persist(tx, projectId, output) : output;
      const [run] = await tx
        .insert(stageRuns)
        .values({ projectId, stage, status: 'completed', source, input: {}, output: saved, text, createdBy: user.id, startedAt: new Date(), finishedAt: new Date() })
        .returning();
      await this.completeStage(tx, projectId, stage, run.id, saved);
      return run;
    });
    await this.d.projects.refreshStatus(projectId);
    return toRun(row);
  }

  /** Marks the stage completed with this output, and the completed stages after it stale. */
  private async completeStage(tx: Db, projectId: string, stage: StageKey, runId: string, output: unknown) {
    await tx
      .update(projectStages)
      .set({ status: 'completed', output, currentRunId: runId, stale: false, statusReason: null, updatedAt: new Date() })
      .where(and(eq(projectStages.projectId, projectId), eq(projectStages.stageType, stage)));
    const stages = await tx.select().from(projectStages).where(eq(projectStages.projectId, projectId));
    const position = stages.find((s) => s.stageType === stage)!.position;
    const later = stages.filter((s) => s.position > position && s.status === 'completed').map((s) => s.id);
    if (later.length) await tx.update(projectStages).set({ stale: true, updatedAt: new Date() }).where(inArray(projectStages.id, later));
  }

  /** On start-up: runs a crashed process left running are marked interrupted, partial text kept. */
  async recoverOrphans() {
    const orphans = await this.d.repo.interruptOrphans();
    for (const projectId of new Set(orphans.map((o) => o.projectId))) await this.d.projects.refreshStatus(projectId);
    return orphans.length;
  }

  /** On shutdown: stop every run, saving what it wrote as `interrupted`. */
  async shutdown() {
    clearInterval(this.checkpointTimer);
    for (const run of this.active.values()) {
      run.stopReason = 'interrupted';
      run.abort.abort();
    }
    await Promise.all([...this.active.values()].map((r) => r.finished));
  }

  // ---- execution ----

  private async execute(run: ActiveRun, candidates: ClientProvider[], prompt: string) {
    const { definition } = run;
    const messages = [
      { role: 'system' as const, content: definition.systemPrompt },
      { role: 'user' as const, content: prompt },
    ];
    let lastError: LlmError | Error | undefined;
    try {
      for (let i = 0; i < candidates.length; i++) {
        const provider = candidates[i];
        run.provider = provider;
        if (i > 0) {
          await this.d.repo.update(run.row.id, { providerId: provider.id, providerName: provider.name, model: provider.model_name, isSimulated: provider.is_simulated });
          this.emit(run, { type: 'info', message: `Switching to ${provider.name} (${provider.model_name})` });
        }
        const endCall = this.d.providers.selector.begin(provider.id);
        try {
          const final = await streamAttempt(this, run, provider, messages);
          endCall('ok');
          await this.finishCompleted(run, final);
          return;
        } catch (err) {
          endCall(err instanceof LlmError && err.code === 'cancelled' ? 'ok' : 'failed');
          lastError = err as Error;
          if (run.abort.signal.aborted) break;
          const e = err instanceof LlmError ? err : undefined;
          if (e) await this.recordUsage(run, provider, null, e.code);
          const canFailOver = i + 1 < candidates.length && e?.retryable;
          if (!canFailOver) break;
          if (e.afterFirstToken) {
            // The partial answer came from a provider that broke; clients discard it and follow the restart.
            this.flush(run);
            run.text = '';
            run.tokens = 0;
            run.itemsSent = 0;
            run.checkpointedLength = 0;
            this.emit(run, { type: 'reset', reason: `${provider.name} failed mid-answer (${e.message}); restarting on another provider` });
          }
        }
      }
      if (run.abort.signal.aborted) await this.finishStopped(run);
      else await this.finishFailed(run, lastError);
    } finally {
      clearTimeout(run.flushTimer);
      this.active.delete(run.row.id);
      this.d.runLog.expire(runKey(run.row.id), KEEP_FINISHED_MS);
      await this.d.projects.refreshStatus(run.row.projectId).catch(() => {});
      const finished = { runId: run.row.id, projectId: run.row.projectId, stage: run.stage, status: run.finalStatus ?? 'failed' };
      for (const l of this.finishedListeners) void Promise.resolve(l(finished)).catch((err) => this.d.log.error({ err }, 'run listener failed'));
    }
  }

  onDelta(run: ActiveRun, text: string) {
    run.text += text;
    run.pending += text;
    run.tokens += 1;
    if (run.flushTimer) return;
    const wait = COALESCE_MS - (Date.now() - run.lastFlushAt);
    if (wait <= 0) this.flush(run);
    else run.flushTimer = setTimeout(() => this.flush(run), wait);
  }

  private flush(run: ActiveRun) {
    clearTimeout(run.flushTimer);
    run.flushTimer = undefined;
    if (!run.pending) return;
    const now = Date.now();
    this.emitToken(run, run.pending);
    run.pending = '';
    run.lastFlushAt = now;
    if (run.definition.items) this.emitCompletedItems(run, completedItems(run.text, run.definition.items.key));
    if (now - run.lastProgressAt >= PROGRESS_EVERY_MS) {
      run.lastProgressAt = now;
      this.emit(run, this.progress(run, now));
    }
  }

  /** Sends each structured item (shot, movement) once, as soon as it is complete. */
  private emitCompletedItems(run: ActiveRun, raw: unknown[], saved = false) {
    const items = run.definition.items!;
    while (run.itemsSent < raw.length) {
      const item = saved ? raw[run.itemsSent] : items.normalize(raw[run.itemsSent], run.itemsSent, run.input, run.ctx);
      if (item === null) return; // not usable yet or never: the final parse decides
      this.emit(run, { type: items.event, [items.event]: item });
      run.itemsSent++;
    }
  }

  private progress(run: ActiveRun, now: number) {
    const elapsed = now - run.startedAt;
    const tokensPerS = elapsed > 0 ? (run.tokens * 1000) / elapsed : 0;
    const left = run.expectedTokens ? Math.max(0, run.expectedTokens - run.tokens) : null;
    return {
      type: 'progress' as const,
      tokens: run.tokens,
      elapsed_ms: elapsed,
      tokens_per_s: Math.round(tokensPerS * 10) / 10,
      eta_ms: left !== null && tokensPerS > 0 ? Math.round((left / tokensPerS) * 1000) : null,
    };
  }

  /** Saves the text so far, at most once per interval and only when it grew: never a write per token. */
  /**
   * Saves the text so far of every run that grew since the last time, in one statement: the write
   * rate depends on the clock, not on the number of tokens or of runs.
   */
  async checkpoint() {
    const chunks = [];
    for (const run of this.active.values()) {
      if (run.text.length === run.checkpointedLength) continue;
      // After a reset the text starts over, and so does the checkpointed part.
      const offset = Math.min(run.checkpointedLength, run.text.length);
      chunks.push({ runId: run.row.id, seq: run.chunkSeq++, offset, text: run.text.slice(offset) });
      run.checkpointedLength = run.text.length;
    }
    if (chunks.length) await this.d.repo.appendChunks(chunks).catch((err) => this.d.log.warn({ err }, 'checkpoint failed'));
  }

  /** Starts the checkpoint clock (stopped by shutdown). */
  startCheckpoints() {
    this.checkpointTimer = setInterval(() => void this.checkpoint(), this.d.config.checkpointMs);
    this.checkpointTimer.unref();
  }

  private async finishCompleted(run: ActiveRun, final: { text: string; usage: { prompt_tokens: number; completion_tokens: number; estimated: boolean }; ttft_ms: number | null; duration_ms: number; finish_reason: string }) {
    this.flush(run);
    let output: unknown;
    try {
      output = run.definition.parseOutput(run.text, run.input, run.ctx);
    } catch (err) {
      if (err instanceof StageOutputError) return this.finishFailed(run, err, 'bad_output');
      throw err;
    }
    const usage = await this.recordUsage(run, run.provider!, final, 'ok');
    const terminalId = this.d.runLog.lastId(runKey(run.row.id)) + 1;
    const saved = await this.d.db.transaction(async (tx) => {
      const persisted = await run.definition.persist(tx, run.row.projectId, output);
      const [row] = await tx
        .update(stageRuns)
        .set({ status: 'completed', text: run.text, output: persisted, usage, finishedAt: new Date(), lastEventId: terminalId })
        .where(eq(stageRuns.id, run.row.id))
        .returning();
      await this.d.repo.deleteChunks(tx, run.row.id);
      await this.completeStage(tx, run.row.projectId, run.stage, run.row.id, persisted);
      return row;
    });
    const items = run.definition.items;
    // The last items (complete only now) go out as saved, with their ids.
    if (items) this.emitCompletedItems(run, items.producedBy?.(saved.output, output) ?? (saved.output as Record<string, unknown[]>)[items.key] ?? [], true);
    run.finalStatus = 'completed';
    this.emit(run, { type: 'done', full_text: run.text, ...(items && { output: saved.output }), run: slimRun(saved) }, true);
  }

  private async finishFailed(run: ActiveRun, err: unknown, code?: string) {
    this.flush(run);
    const e = err instanceof LlmError ? err : undefined;
    const error = {
      message: err instanceof Error ? err.message : 'The generation failed',
      code: code ?? e?.code ?? 'internal_error',
      retryable: e?.retryable ?? false,
    };
    if (!e && !(err instanceof StageOutputError)) this.d.log.error({ err, runId: run.row.id }, 'run failed');
    const terminalId = this.d.runLog.lastId(runKey(run.row.id)) + 1;
    await this.d.db.transaction(async (tx) => {
      await tx.update(stageRuns).set({ status: 'failed', text: run.text, error, finishedAt: new Date(), lastEventId: terminalId }).where(eq(stageRuns.id, run.row.id));
      await this.d.repo.deleteChunks(tx, run.row.id);
      await tx
        .update(projectStages)
        .set({ status: 'failed', statusReason: error.message, updatedAt: new Date() })
        .where(and(eq(projectStages.projectId, run.row.projectId), eq(projectStages.stageType, run.stage), eq(projectStages.currentRunId, run.row.id)));
    });
    run.finalStatus = 'failed';
    this.emit(run, { type: 'error', ...error }, true);
  }

  private async finishStopped(run: ActiveRun) {
    this.flush(run);
    const status = run.stopReason ?? 'cancelled';
    const terminalId = this.d.runLog.lastId(runKey(run.row.id)) + 1;
    await this.d.db.transaction(async (tx) => {
      await tx.update(stageRuns).set({ status, text: run.text, finishedAt: new Date(), lastEventId: terminalId }).where(eq(stageRuns.id, run.row.id));
      await this.d.repo.deleteChunks(tx, run.row.id);
      await tx
        .update(projectStages)
        .set({ status, statusReason: status === 'cancelled' ? 'Stopped by the user' : 'The server stopped during the run', updatedAt: new Date() })
        .where(and(eq(projectStages.projectId, run.row.projectId), eq(projectStages.stageType, run.stage), eq(projectStages.currentRunId, run.row.id)));
    });
    if (run.provider) await this.recordUsage(run, run.provider, null, status);
    run.finalStatus = status;
    this.emit(run, { type: 'stage_update', status }, true);
  }

  private async recordUsage(
    run: ActiveRun,
    provider: ClientProvider,
    final: { usage: { prompt_tokens: number; completion_tokens: number; estimated: boolean }; ttft_ms: number | null; duration_ms: number } | null,
    outcome: string,
  ): Promise<RunUsage> {
    const usage = final?.usage ?? { prompt_tokens: 0, completion_tokens: run.tokens, estimated: true };
    const durationMs = final?.duration_ms ?? Date.now() - run.startedAt;
    const cost = await this.d.providers
      .recordUsage(provider, {
        runId: run.row.id,
        promptTokens: usage.prompt_tokens,
        completionTokens: usage.completion_tokens,
        estimated: usage.estimated,
        ttftMs: final?.ttft_ms ?? null,
        durationMs,
        outcome,
      })
      .catch((err) => {
        this.d.log.warn({ err }, 'usage not recorded');
        return 0;
      });
    return { ...usage, ttft_ms: final?.ttft_ms ?? null, duration_ms: durationMs, cost };
  }

  /** Appends an event to the run's log and the project's log (each numbered on its own). */
  emit(run: ActiveRun, event: { type: string; [k: string]: unknown }, terminal = false) {
    const full = JSON.stringify({ ...event, run_id: run.row.id, stage: run.stage });
    this.d.runLog.append(runKey(run.row.id), full, terminal);
    this.d.projectLog.append(projectKey(run.row.projectId), full);
  }

  /**
   * The hot path: one token event, its content serialised once. In a run's own stream a token needs
   * no run id or stage (the URL says which run it is); the project stream needs both.
   */
  private emitToken(run: ActiveRun, content: string) {
    const c = JSON.stringify(content);
    this.d.runLog.append(runKey(run.row.id), `{"type":"token","content":${c}}`);
    this.d.projectLog.append(projectKey(run.row.projectId), `{"type":"token","content":${c},"run_id":"${run.row.id}","stage":"${run.stage}"}`);
  }

  private withLiveText(row: RunRow): Run {
    const live = this.active.get(row.id);
    return toRun(live ? { ...row, text: live.text } : row);
  }
}

/** Streams one attempt from one provider into the run. */
async function streamAttempt(
  service: RunService,
  run: ActiveRun,
  provider: ClientProvider,
  messages: { role: 'system' | 'user'; content: string }[],
) {
  const stream = streamChat({
    provider,
    messages,
    response_format: run.definition.responseFormat,
    signal: run.abort.signal,
  });
  for (;;) {
    const next = await stream.next();
    if (next.done) return next.value;
    if (next.value.kind === 'text') service.onDelta(run, next.value.text);
  }
}

function stripUndefined(o: Record<string, unknown>) {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null));
}

/** The run in a `done` event: its text and output travel in the event's own fields, not twice more. */
export const slimRun = (row: RunRow): Run => ({ ...toRun(row), text: '', output: null, prompt: null });

export function toRun(row: RunRow): Run {
  return {
    id: row.id,
    project_id: row.projectId,
    stage: row.stage as StageKey,
    status: row.status as Run['status'],
    input: row.input,
    prompt: row.prompt,
    provider: row.providerName,
    provider_id: row.providerId,
    model: row.model,
    is_simulated: row.isSimulated,
    output: row.output ?? null,
    text: row.text,
    usage: (row.usage as Run['usage']) ?? null,
    error: (row.error as Run['error']) ?? null,
    source: row.source,
    created_by: row.createdBy,
    created_at: row.createdAt.toISOString(),
    started_at: row.startedAt?.toISOString() ?? null,
    finished_at: row.finishedAt?.toISOString() ?? null,
  };
}
