import type { ModelConfig, Run, StageKey } from '@ai-story/contracts';
import { DrizzleQueryError } from 'drizzle-orm';
import type { FastifyBaseLogger } from 'fastify';
import type { AuthUser } from '../auth/service.ts';
import type { Config } from '../config.ts';
import { isConnectionError } from '../db/client.ts';
import type { RunRow } from '../db/schema.ts';
import { AppError, conflict, notFound, unavailable } from '../errors.ts';
import type { PromptService } from '../prompts/service.ts';
import type { ProjectRepository } from '../projects/repository.ts';
import { checkAccess, type Need, type ProjectService } from '../projects/service.ts';
import { REASONS } from '../projects/status-reasons.ts';
import { LlmError } from '../providers/llm-client.ts';
import type { LlmStreamThread } from '../providers/llm-stream-thread.ts';
import type { ClientProvider, ProviderService } from '../providers/service.ts';
import { StageInputError, StageOutputError, type MediaServices, type StageContext, type StageDefinition } from '../stages/definition.ts';
import { readsShots, STAGES } from '../stages/index.ts';
import type { StoryboardRepository } from '../storyboard/repository.ts';
import type { Outcome } from './execution.ts';
import { LiveRun, type FinalStatus } from './live-run.ts';
import { chatMessages, EarlyCall, executeLlm, logUsageNotSaved } from './llm-execution.ts';
import { executeMedia } from './media-execution.ts';
import { KEEP_IN_MEMORY_MS, runKey, type RunEventBody, type RunPublisher } from './publisher.ts';
import type { RunJob, RunQueue } from './run-queue.ts';
import type { RemoteRuns } from './redis-events.ts';
import type { PipelineState, RunRepository } from './repository.ts';

/** `pipeline`: the project's pipeline state when the ending was saved (absent when it was not saved here). */
export type RunFinishedListener = (run: { runId: string; projectId: string; stage: StageKey; status: FinalStatus; pipeline?: PipelineState }) => unknown;

export interface RunDeps {
  /** This studio's lease (instances/lease.ts): the owner of every run it starts. */
  instanceId: string;
  repo: RunRepository;
  projects: ProjectService;
  projectRepo: ProjectRepository;
  storyboards: StoryboardRepository;
  prompts: PromptService;
  providers: ProviderService;
  /** Reads LLM streams for the runs (providers/llm-stream-thread.ts). */
  llm: Pick<LlmStreamThread, 'streamChat'>;
  publisher: RunPublisher;
  media: Omit<MediaServices, 'userId' | 'runId'>;
  config: Config;
  log: FastifyBaseLogger;
  /** The stages the engine runs (tests may add one of their own). */
  stages?: Partial<Record<StageKey, StageDefinition>>;
  /** Scale-out mode: runs held by other instances (a cancel reaches their owner). */
  remote?: RemoteRuns;
  /** Workers mode, in an API instance: runs are queued for the workers instead of executed here. */
  queue?: RunQueue;
}

/** How long a start's access check lets its starter follow the run without reading it again. */
export const STARTER_ACCESS_MS = 5_000;

/**
 * What a user can do with a run (DESIGN §4): start one, cancel it, read it and its history, restore
 * an earlier version or save a hand edit. A run lives apart from the request that started it; its
 * moment-to-moment state is a LiveRun, its execution is llm-execution or media-execution, and its
 * ending is saved in one repository transaction.
 */
export class RunService {
  private readonly active = new Map<string, LiveRun>();
  private checkpointTimer?: NodeJS.Timeout;
  private sweepTimer?: NodeJS.Timeout;
  private closing = false;
  private checkpointing = false;
  private readonly finishedListeners = new Set<RunFinishedListener>();
  private readonly stages: Partial<Record<StageKey, StageDefinition>>;

  constructor(private readonly d: RunDeps) {
    this.stages = { ...STAGES, ...d.stages };
    d.remote?.onCancel((runId) => {
      const run = this.active.get(runId);
      if (run) this.stop(run, 'cancelled');
    });
  }

  activeRun = (runId: string) => this.active.get(runId);
  definitionOf = (stage: StageKey) => this.stages[stage];

  /** The text a run has sent in events so far (what is still coalescing goes out in the next event). */
  sentText = (runId: string) => this.active.get(runId)?.sentText ?? '';

  /** Told when a run has ended and its result is saved (the pipeline moves on from here). */
  onFinished(listener: RunFinishedListener) {
    this.finishedListeners.add(listener);
    return () => this.finishedListeners.delete(listener);
  }
  get activeCount() {
    return this.active.size;
  }

  async start(user: AuthUser, projectId: string, stage: StageKey, body: { input: Record<string, unknown>; provider_id?: string }): Promise<Run> {
    return toRun(await this.startRow(user, projectId, stage, body));
  }

  /** Starts a run and answers its saved row (a start that streams its events at once needs no read of it). */
  async startRow(user: AuthUser, projectId: string, stage: StageKey, body: { input: Record<string, unknown>; provider_id?: string }): Promise<RunRow> {
    const checked = { userId: user.id, accessVersion: this.d.projects.accessVersion, at: Date.now() }; // before the read it vouches for
    const definition = this.stages[stage];
    // Access, the stages (with the outputs the stage reads) and the active-run check in one read; the shots beside it (used only once access is granted).
    const [{ project, stages, activeRunId }, shots] = await Promise.all([
      this.d.projects.accessForRun(user, projectId, stage, definition?.reads),
      readsShots(stage) ? this.d.storyboards.shots(projectId) : [],
    ]);
    if (!definition) {
      throw new AppError(400, 'validation_error', `The ${stage} stage is not available yet`, { fields: { stage: 'Not available yet' } });
    }
    // A missing tool is the server's problem, said before anything about the input.
    if (definition.kind === 'media' && definition.usesFfmpeg && !this.d.media.mediaTools) {
      throw new AppError(503, 'unavailable', 'ffmpeg is not installed on the server: an admin runs apt-get install -y ffmpeg (or sets FFMPEG_PATH and FFPROBE_PATH)', { missing: 'ffmpeg' });
    }
    const ctx: StageContext = { project, stages, shots };
    const input = parseInput(definition, ctx, body.input);
    if (activeRunId) throw conflict('This stage is already running', { active_run_id: activeRunId });

    const local = definition.kind === 'media' ? definition.local : undefined;
    const localPreferred = !body.provider_id && !!local?.preferred?.(input, ctx);
    const providerType = definition.kind === 'llm' ? 'llm' : definition.providerType;
    const selection =
      providerType && !localPreferred
        ? await this.d.providers.candidatesFor(providerType, stage, { providerId: body.provider_id, projectConfig: project.modelConfig as ModelConfig })
        : { order: [], skipped: [], cooling: [] };
    const runsLocally = !!local && selection.order.length === 0;
    if (providerType && selection.order.length === 0 && !runsLocally) {
      // Only switched-off providers or limits an admin set can leave nothing to try (a cool-down never does).
      const why = selection.skipped.map((s) => s.reason).join('; ');
      const waits = selection.skipped.map((s) => s.retryAfterMs).filter((ms): ms is number => ms !== undefined);
      throw unavailable(`No model provider is available for this stage${why ? ` (${why})` : ''}; an admin can add or enable one`, waits.length ? Math.min(...waits) / 1000 : 60);
    }
    if (definition.kind === 'media' && definition.beforeStart) {
      try {
        definition.beforeStart(input, ctx, runsLocally ? [] : selection.order);
      } catch (err) {
        if (err instanceof StageInputError) throw new AppError(400, 'validation_error', err.message, { fields: { [err.field]: err.message } });
        throw err;
      }
    }
    // The project's template set (or the default set) decides the words; the exact prompt is kept on the run.
    const prompt = definition.kind === 'llm' ? await this.d.prompts.renderFor(project, stage, definition.variables(input, ctx)) : null;

    const first = selection.order[0];
    const label = runsLocally && local ? { name: local.name, modelName: local.model, isSimulated: local.simulated } : first;
    const queued = !!this.d.queue;
    const candidates = queued ? [] : await Promise.all(selection.order.map((p) => this.d.providers.clientProvider(p)));
    // A model thinks longer than the insert takes: a run executed here asks it now, beside the insert.
    const early = definition.kind === 'llm' && candidates[0] ? new EarlyCall(candidates[0], chatMessages(definition, prompt ?? ''), definition.responseFormat, this.d) : undefined;
    let inserted: RunRow | 'conflict' | 'gone';
    try {
      inserted = await this.d.repo.insertActive({
        projectId,
        stage,
        // Workers mode: `queued` with no owner until a worker takes it (and becomes its owner).
        status: queued ? 'queued' : 'running',
        input,
        prompt,
        providerId: first?.id ?? null,
        providerName: label?.name ?? null,
        model: label?.modelName ?? null,
        isSimulated: label?.isSimulated ?? false,
        createdBy: user.id,
        startedAt: new Date(),
        ownerInstanceId: queued ? null : this.d.instanceId,
      });
    } catch (err) {
      early?.cancel();
      throw err;
    }
    if (inserted === 'gone') {
      early?.cancel();
      throw notFound('Project');
    }
    if (inserted === 'conflict') {
      early?.cancel();
      const active = await this.d.repo.findActive(projectId, stage);
      throw conflict('This stage is already running', { active_run_id: active?.id });
    }
    if (!this.d.queue) this.launch(inserted, definition, input, ctx, candidates, { userId: user.id, early, checked });
    // The stage and the project's status were saved with the run; listeners of the project hear it now.
    this.d.projects.notifyChange(projectId);
    await this.d.queue?.add({ runId: inserted.id, userId: user.id, providerIds: selection.order.map((p) => p.id) });
    return inserted;
  }

  /**
   * A worker (`npm run worker`): executes a run an API instance queued, once it has made the run its
   * own. A run no longer queued (cancelled meanwhile, or handed out twice after a stall) is left alone.
   */
  async executeQueued(job: RunJob): Promise<void> {
    const row = await this.d.repo.claimQueued(job.runId, this.d.instanceId);
    if (!row) return;
    const target = { runId: row.id, projectId: row.projectId, stage: row.stage as StageKey };
    try {
      const definition = this.stages[target.stage];
      const project = await this.d.projectRepo.findById(row.projectId);
      if (!definition || !project) throw new Error('Its stage or project no longer exists');
      const shots = readsShots(target.stage) ? await this.d.storyboards.shots(row.projectId) : [];
      const ctx: StageContext = { project, stages: await this.d.projectRepo.stages(row.projectId), shots };
      this.launch(row, definition, row.input, ctx, await this.d.providers.clientProvidersById(job.providerIds), { userId: job.userId });
    } catch (err) {
      // Taken but not started: it must not stay `running` under this live worker.
      const error = { message: `The run could not start: ${(err as Error).message}`, code: 'internal', retryable: true };
      await this.d.repo.endRun({ ...target, id: row.id, checkpointed: false }, { status: 'failed', text: '', error, reason: error.message, lastEventId: 1 });
      this.d.publisher.emit(target, { type: 'error', ...error }, true);
      this.d.projects.notifyChange(row.projectId);
      throw err;
    }
    await this.active.get(row.id)?.finished;
  }

  /**
   * Makes a saved run live here and executes it: its events start, and its ending is saved when it
   * comes. `start`: who started it, the model call already sent for it, and the access check it passed.
   */
  private launch(row: RunRow, definition: StageDefinition, input: unknown, ctx: StageContext, candidates: ClientProvider[], start: { userId: string; early?: EarlyCall; checked?: LiveRun['checked'] }) {
    const { userId, early } = start;
    const expected = definition.kind === 'llm' ? (definition.expectedTokens?.(input as never) ?? null) : null;
    const run = new LiveRun(row, definition, input, ctx, this.d.publisher, expected);
    run.checked = start.checked;
    this.active.set(row.id, run);
    run.emit({ type: 'stage_update', status: 'running' });
    if (row.providerName) {
      const local = definition.kind === 'media' && !row.providerId ? definition.local : undefined;
      run.emit({
        type: 'info',
        code: row.isSimulated ? 'generating_simulated' : 'generating',
        // `local` lets the web app name the studio's own method in the reader's language.
        params: { provider: row.providerName, model: row.model ?? '', ...(local && { local: definition.key }) },
        message: `Generating with ${row.providerName} (${row.model})${row.isSimulated ? ' — simulated offline demo' : ''}`,
      });
    }
    run.finished = this.execute(run, candidates, row.prompt ?? '', userId, early).catch((err) => this.d.log.error({ err, runId: run.id }, 'run crashed'));
  }

  /** Stops a run at the user's request; what it made so far is kept. */
  async cancel(user: AuthUser, runId: string): Promise<Run> {
    const row = await this.accessibleRun(user, runId, 'edit');
    const run = this.active.get(runId);
    if (!run) {
      if (row.status !== 'running' && row.status !== 'queued') return toRun(row); // already finished: cancelling is a no-op, not an error
      // Workers mode: a run still waiting for a worker is cancelled in the database; its followers are told.
      if (row.status === 'queued' && (await this.d.repo.cancelQueued(row))) {
        this.d.publisher.emit({ runId, projectId: row.projectId, stage: row.stage as StageKey }, { type: 'stage_update', status: 'cancelled' }, true);
        this.d.projects.notifyChange(row.projectId);
        return toRun((await this.d.repo.find(runId))!);
      }
      if (!this.d.remote) throw conflict('This run is owned by another server instance');
      await this.d.remote.cancel(runId);
      return toRun((await this.d.repo.find(runId))!);
    }
    this.stop(run, 'cancelled');
    await run.finished;
    return toRun((await this.d.repo.find(runId))!);
  }

  private stop(run: LiveRun, reason: 'cancelled' | 'interrupted') {
    run.stopReason = reason;
    run.abort.abort();
  }

  async get(user: AuthUser, runId: string): Promise<Run> {
    return this.withLiveText(await this.accessibleRun(user, runId, 'view'));
  }

  /**
   * A live run's row for the user who has just started it: the start checked their access, and it
   * still holds if nobody has lost access to a project here since (and not long ago; a deleted or
   * signed-out account fails its credential check first). The run's own stream, opened right after
   * the start, then needs no read of its own on the way to the first token.
   */
  startersRow(user: AuthUser, runId: string): RunRow | undefined {
    const run = this.active.get(runId);
    const checked = run?.checked;
    if (!checked || checked.userId !== user.id || checked.accessVersion !== this.d.projects.accessVersion || Date.now() - checked.at >= STARTER_ACCESS_MS) return undefined;
    return run!.row;
  }

  /** The run, once the user's access to its project allows `need` (read together). */
  async accessibleRun(user: AuthUser, runId: string, need: Need): Promise<RunRow> {
    const found = await this.d.repo.findWithAccess(runId, user.id);
    if (!found) throw notFound('Run');
    checkAccess(user, found, need);
    return found.run;
  }

  async history(user: AuthUser, projectId: string, stage: StageKey, page: number, pageSize: number) {
    await this.d.projects.allows(user, projectId, 'view');
    const { count, rows } = await this.d.repo.history(projectId, stage, page, pageSize);
    return { count, results: rows.map((r) => this.withLiveText(r)) };
  }

  /** Makes a past run's output the stage's current output again (recorded as a new version). */
  async restore(user: AuthUser, runId: string): Promise<Run> {
    const row = await this.accessibleRun(user, runId, 'edit');
    if (!row.output) throw conflict('Only a completed run with an output can be restored');
    return this.saveVersion(user, row.projectId, row.stage as StageKey, row.output, 'restore', row.text);
  }

  /** Saves a hand edit of a stage's output as a new version in the history. */
  async editOutput(user: AuthUser, projectId: string, stage: StageKey, edit: Record<string, unknown>): Promise<Run> {
    await this.d.projects.allows(user, projectId, 'edit');
    const definition = this.stages[stage];
    if (!definition) throw new AppError(400, 'validation_error', `The ${stage} stage cannot be edited yet`, { fields: { stage: 'Not available yet' } });
    if (!definition.editOutput) throw new AppError(400, 'validation_error', `Editing ${stage} goes through its own endpoints`, { fields: { stage: 'Use the stage endpoints' } });
    const current = (await this.d.projectRepo.stage(projectId, stage))?.output ?? null;
    try {
      const { output, text } = definition.editOutput(edit, current);
      return await this.saveVersion(user, projectId, stage, output, 'edit', text);
    } catch (err) {
      if (err instanceof StageInputError) throw new AppError(400, 'validation_error', `${err.field}: ${err.message}`, { fields: { [err.field]: err.message } });
      throw err;
    }
  }

  private async saveVersion(user: AuthUser, projectId: string, stage: StageKey, output: unknown, source: 'edit' | 'restore', text: string) {
    const active = await this.d.repo.findActive(projectId, stage);
    if (active) throw conflict('Stop the running generation before changing this stage', { active_run_id: active.id });
    const definition = this.stages[stage];
    const row = await this.d.repo.saveVersion({ projectId, stage, source, text, createdBy: user.id }, (store) =>
      definition ? definition.persist(store, projectId, output) : Promise.resolve(output),
    );
    this.d.projects.notifyChange(projectId); // the project's status was settled with the version
    return toRun(row);
  }

  /**
   * On start-up: runs left running by a studio whose lease is gone (it crashed, or was stopped) are
   * marked interrupted, what they made kept. A live studio's runs are not touched.
   */
  async recoverOrphans() {
    const orphans = await this.d.repo.interruptOrphans();
    // The projects' statuses first: a follower told the run ended reads its project next, and must not
    // find it still `processing`.
    for (const projectId of new Set(orphans.map((o) => o.projectId))) await this.d.projects.refreshStatus(projectId);
    // Shared logs (scale-out): the followers of a crashed instance's run are on other instances, still
    // waiting; they get the ending the owner never wrote. (A single studio's logs died with it.)
    const { runLog } = this.d.publisher;
    if (runLog.attach) {
      for (const o of orphans) {
        await runLog.attach(runKey(o.id), false);
        // No stream (its owner was not in scale-out mode, or it expired): nobody follows it; the database replays it.
        if (runLog.lastId(runKey(o.id)) === 0) continue;
        const target = { runId: o.id, projectId: o.projectId, stage: o.stage as StageKey };
        this.d.publisher.emit(target, { type: 'stage_update', status: 'interrupted' }, true);
        this.d.publisher.expire(target, KEEP_IN_MEMORY_MS);
      }
    }
    return orphans.length;
  }

  /**
   * Scale-out: an instance that crashes is not restarted by the others, so every instance looks for
   * runs whose owner's lease has run out, this often (one of them wins each run: the update is atomic).
   */
  startOrphanSweep(everyMs: number) {
    this.sweepTimer = setInterval(() => {
      if (this.closing) return;
      this.recoverOrphans().then(
        (n) => n && this.d.log.warn({ interrupted: n }, 'runs of a studio instance that stopped answering were marked interrupted'),
        (err: unknown) => this.d.log.warn({ err }, 'looking for runs of stopped instances failed'),
      );
    }, everyMs);
    this.sweepTimer.unref();
  }

  /** On shutdown: stop every run, saving what it made as `interrupted`. */
  async shutdown() {
    this.closing = true;
    clearInterval(this.checkpointTimer);
    clearInterval(this.sweepTimer);
    for (const run of this.active.values()) this.stop(run, 'interrupted');
    await Promise.all([...this.active.values()].map((r) => r.finished));
  }

  /**
   * Saves the text so far of every run that grew since the last time, in one statement: the write
   * rate depends on the clock, not on the number of tokens or of runs.
   */
  async checkpoint() {
    // One at a time: while the database is away, a slow failing checkpoint must not overlap the next.
    if (this.checkpointing) return;
    this.checkpointing = true;
    try {
      await this.writeCheckpoints();
    } finally {
      this.checkpointing = false;
    }
  }

  private async writeCheckpoints() {
    const runs = [...this.active.values()];
    const taken = runs.map((r) => [r, r.takeCheckpoint()] as const).filter((t) => t[1] !== null);
    if (!taken.length) return;
    await this.d.repo.appendChunks(taken.map((t) => t[1]!)).catch((err) => {
      // The next checkpoint covers this piece too, so the saved text has no hole after an outage.
      for (const [run, chunk] of taken) run.checkpointFailed(chunk!);
      this.d.log.warn({ err }, 'checkpoint failed');
    });
  }

  /** Starts the checkpoint clock (stopped by shutdown). */
  startCheckpoints() {
    this.checkpointTimer = setInterval(() => void this.checkpoint(), this.d.config.checkpointMs);
    this.checkpointTimer.unref();
  }

  // ---- execution and its ending ----

  private async execute(run: LiveRun, candidates: ClientProvider[], prompt: string, userId: string, early?: EarlyCall) {
    try {
      let outcome: Outcome;
      try {
        outcome =
          run.definition.kind === 'llm'
            ? await executeLlm(run, candidates, prompt, { providers: this.d.providers, llm: this.d.llm, repo: this.d.repo, log: this.d.log }, early)
            : await executeMedia(run, candidates, { repo: this.d.repo, services: { ...this.d.media, userId, runId: run.id } });
      } catch (err) {
        outcome = run.abort.signal.aborted ? { status: 'stopped' } : { status: 'failed', error: err as Error };
      }
      if (outcome.status === 'completed') await this.finishCompleted(run, outcome);
      else if (outcome.status === 'stopped') await this.finishStopped(run);
      else await this.finishFailed(run, outcome.error, outcome.code);
    } catch (err) {
      // Its ending could not be saved: clients still get a terminal event; the row stays active until
      // the next start-up recovers it.
      this.d.log.error({ err, runId: run.id }, 'could not save the end of a run');
      if (!run.finalStatus) this.interruptedHere(run);
    } finally {
      early?.cancel(); // a call its execution never took (nothing, once taken)
      run.dispose();
      this.active.delete(run.id);
      this.d.publisher.expire(run.target, KEEP_IN_MEMORY_MS);
      // The ending's transaction settled the project's status; listeners of the project hear it now.
      this.d.projects.notifyChange(run.row.projectId);
      const finished = { runId: run.id, projectId: run.row.projectId, stage: run.definition.key, status: run.finalStatus ?? 'failed', pipeline: run.pipelineAtEnd };
      for (const l of this.finishedListeners) void Promise.resolve(l(finished)).catch((err) => this.d.log.error({ err }, 'run listener failed'));
    }
  }

  private async finishCompleted(run: LiveRun, outcome: Extract<Outcome, { status: 'completed' }>) {
    run.flush();
    const definition = run.definition;
    // Structured items still unsent (complete only now) go out before the save, so the terminal
    // event's id, saved with the run, is exactly the next one; `done` carries them with their ids.
    if (definition.kind === 'llm' && definition.items) run.sendItems((outcome.output as Record<string, unknown[]>)[definition.items.key] ?? [], true);
    // The call's usage row goes in the ending's transaction (saving it again on a retry adds nothing): `done` follows both.
    const { ending: saved, alongside } = await this.untilSaved(() =>
      this.d.repo.completeRun(
        { id: run.id, projectId: run.row.projectId, stage: definition.key, checkpointed: run.checkpointed },
        { text: run.text, usage: outcome.usage, lastEventId: this.d.publisher.lastId(run.id) + 1 },
        (store) => definition.persist(store, run.row.projectId, outcome.output),
        outcome.saveUsage,
      ),
    );
    if (alongside.status === 'rejected') logUsageNotSaved(this.d.log, run.id, alongside.reason);
    if (!saved) return this.endedElsewhere(run);
    const row = { ...saved.row, input: run.row.input, prompt: run.row.prompt };
    this.ended(run, 'completed', { type: 'done', output: row.output, ...(definition.kind === 'llm' && { full_text: run.text }), run: slimRun(row) }, saved.pipeline);
  }

  private async finishFailed(run: LiveRun, err: unknown, code?: string) {
    run.flush();
    const e = err instanceof LlmError ? err : undefined;
    const error = {
      // A failed query's message lists its bound values: it is logged (without them), never shown.
      message: err instanceof DrizzleQueryError ? 'Saving the result failed; the error was logged' : err instanceof Error ? err.message : 'The generation failed',
      code: code ?? e?.code ?? 'internal_error',
      retryable: e?.retryable ?? false,
    };
    if (!e && !(err instanceof StageOutputError) && !code) this.d.log.error({ err, runId: run.id }, 'run failed');
    const saved = await this.untilSaved(() =>
      this.d.repo.endRun(
        { id: run.id, projectId: run.row.projectId, stage: run.definition.key, checkpointed: run.checkpointed },
        { status: 'failed', text: run.text, error, reason: error.message, lastEventId: this.d.publisher.lastId(run.id) + 1 },
      ),
    );
    if (!saved) return this.endedElsewhere(run);
    this.ended(run, 'failed', { type: 'error', ...error }, saved.pipeline);
  }

  private async finishStopped(run: LiveRun) {
    run.flush();
    const status = run.stopReason ?? 'cancelled';
    const saved = await this.untilSaved(() =>
      this.d.repo.endRun(
        { id: run.id, projectId: run.row.projectId, stage: run.definition.key, checkpointed: run.checkpointed },
        {
          status,
          text: run.text,
          reason: status === 'cancelled' ? REASONS.stopped_by_user : REASONS.server_stopped,
          lastEventId: this.d.publisher.lastId(run.id) + 1,
        },
      ),
    );
    if (!saved) return this.endedElsewhere(run);
    this.ended(run, status, { type: 'stage_update', status }, saved.pipeline);
  }

  /**
   * Its end is in the database: clients get the terminal event, and the run's log merges its tokens
   * (a finished run stays replayable from memory for minutes; one event per token would keep every
   * token's event there as long).
   */
  private ended(run: LiveRun, status: FinalStatus, terminal: RunEventBody, pipeline: PipelineState | undefined) {
    run.finalStatus = status;
    run.pipelineAtEnd = pipeline;
    run.emit(terminal, true);
    this.d.publisher.compact(run.target, run.text);
  }

  /**
   * The run is no longer this instance's: another studio recovered it (marked it interrupted) after
   * this one's lease ran out. Nothing is written over that; the clients here get its ending.
   */
  private endedElsewhere(run: LiveRun) {
    this.d.log.warn({ runId: run.id }, 'run was recovered by another studio; its ending here is not saved');
    this.interruptedHere(run);
  }

  /** The clients of this studio see the run end as interrupted; the database says what it says. */
  private interruptedHere(run: LiveRun) {
    run.finalStatus = 'interrupted';
    run.emit({ type: 'stage_update', status: 'interrupted' }, true);
  }

  /**
   * Saves a run's ending once the database can take it: a short outage must neither lose the result
   * nor leave the run `running`. Other errors, and any error once the studio is stopping, go up.
   */
  private async untilSaved<T>(save: () => Promise<T>): Promise<T> {
    for (let wait = 250; ; wait = Math.min(wait * 2, 4_000)) {
      try {
        return await save();
      } catch (err) {
        if (!isConnectionError(err) || this.closing) throw err;
        this.d.log.warn({ err }, 'the database is unreachable; saving the end of the run again shortly');
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  private withLiveText(row: RunRow): Run {
    const live = this.active.get(row.id);
    return toRun(live ? { ...row, text: live.text } : row);
  }
}

/** The stage's input: what the caller gave over what the project implies, checked by the stage. */
function parseInput(definition: StageDefinition, ctx: StageContext, given: Record<string, unknown>) {
  const parsed = definition.input.safeParse({ ...definition.defaultInput(ctx), ...stripUndefined(given) });
  if (!parsed.success) {
    const fields = Object.fromEntries(parsed.error.issues.map((i) => [['input', ...i.path].join('.'), i.message]));
    const [field, message] = Object.entries(fields)[0];
    throw new AppError(400, 'validation_error', `${field}: ${message}`, { fields });
  }
  try {
    definition.validate?.(parsed.data, ctx);
  } catch (err) {
    if (err instanceof StageInputError) throw new AppError(400, 'validation_error', err.message, { fields: { [err.field]: err.message } });
    throw err;
  }
  return parsed.data;
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
