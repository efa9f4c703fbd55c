import type { FastifyReply, FastifyRequest } from 'fastify';
import type { LiveStreams } from '../auth/live-streams.ts';
import type { AuthUser } from '../auth/service.ts';
import type { StageKey } from '@ai-story/contracts';
import type { RunRow } from '../db/schema.ts';
import type { ProjectRepository } from '../projects/repository.ts';
import { unauthenticated } from '../errors.ts';
import { toStageState, type ProjectService } from '../projects/service.ts';
import type { EventLog, LoggedEvent } from './event-log.ts';
import type { RunRepository } from './repository.ts';
import { KEEP_IN_MEMORY_MS, projectKey, runKey } from './publisher.ts';
import { toRun, type RunService } from './service.ts';
import { lastEventId, openSse, type SseEvent, type SseStream } from './sse.ts';

/** How long a resume waits for ids another instance has sent but this one has not read yet. */
const CATCH_UP_MS = 1_000;

interface StreamDeps {
  runs: RunService;
  repo: RunRepository;
  projects: ProjectService;
  projectRepo: ProjectRepository;
  runLog: EventLog;
  projectLog: EventLog;
  liveStreams: LiveStreams;
  heartbeatMs: number;
}

/**
 * The SSE endpoints' logic: replay what a client missed (or the whole run for a newcomer), then the
 * live tail, then close after the terminal event. Access is re-checked when the project's sharing
 * changes, so a revoked member's open stream ends; a live stream is also filed under the session or
 * token that opened it, so signing out (or losing the account) ends it.
 */
export class RunStreams {
  /**
   * The logs are shared by several instances (scale-out mode; only shared logs can `attach`): a run may
   * be executed by another instance, so whether it is active is the database's word, and its text so
   * far is the log's.
   */
  private readonly shared: boolean;

  constructor(private readonly d: StreamDeps) {
    this.shared = d.runLog.attach !== undefined;
    d.projects.onChange((projectId) => void this.publishProjectUpdate(projectId));
  }

  /**
   * `run`: its id, or the row a start has just saved (already access-checked, so not read again).
   * `accessSeen`: the access count from before the access read (a loss of access after it is caught below).
   */
  async followRun(user: AuthUser, run: string | RunRow, req: FastifyRequest, reply: FastifyReply, accessSeen = this.d.projects.accessVersion) {
    const row = typeof run === 'string' ? await this.readableRun(user, run) : run;
    const runId = row.id;
    const after = lastEventId(req);
    const key = runKey(runId);
    const activeRow = row.status === 'running' || row.status === 'queued';
    if (this.d.runLog.attach) await this.d.runLog.attach(key, activeRow);
    if (this.shared && after !== null && (activeRow || this.d.runLog.lastId(key) > 0)) await this.caughtUp(key, after);
    await this.stillAllowed(user, req, accessSeen, () => this.d.runs.accessibleRun(user, runId, 'view'));
    // Running here, or (shared logs) anywhere: a log that is neither live nor closed was orphaned.
    const live = this.d.runs.activeRun(runId) !== undefined || (this.shared && activeRow);
    // An id past the log's last one was never sent from it (a made-up id, another process's): what the
    // client holds is unknown, so it starts over — a reset, then the whole run, then the live tail.
    const unknown = after !== null && after > this.d.runLog.lastId(key);
    const logged = this.d.runLog.since(key, unknown ? 0 : (after ?? 0));

    if (logged === null || (!live && !this.d.runLog.isClosed(key))) {
      return this.replayFromDatabase(row, after, req, reply);
    }
    const terminalSeen = after !== null && !unknown && this.d.runLog.isClosed(key) && after === this.d.runLog.lastId(key);
    if (terminalSeen) return reply.code(204).send();

    const sse = withSeedCompat(req, openSse(req, reply, this.d.heartbeatMs));
    this.guardAccess(sse, user, row.projectId, req);
    if (unknown) sse.send(startingOver({ id: runId, stage: row.stage }));
    const replay = after === null || unknown ? newcomersCatchUp(logged) : logged;
    for (const e of replay) sse.send(e);
    if (replay.at(-1)?.terminal) return sse.end();
    const stop = this.d.runLog.subscribe(key, (e) => {
      sse.send(e);
      if (e.terminal) sse.end();
    });
    sse.onClose(stop);
  }

  /** The seed's start-and-stream: the run is started, then followed in the same response. */
  async startAndFollow(user: AuthUser, projectId: string, stage: StageKey, body: { input: Record<string, unknown>; provider_id?: string }, req: FastifyRequest, reply: FastifyReply) {
    const accessSeen = this.d.projects.accessVersion; // before the start's access read
    const row = await this.d.runs.startRow(user, projectId, stage, body);
    return this.followRun(user, row, req, reply, accessSeen);
  }

  /**
   * The run, if the user may read it. Its starter following it right after the start needs no read
   * (RunService.startersRow). In scale-out mode an access change made on another instance counts
   * here once its message comes: then the stream's guard (guardAccess) re-checks its reader.
   */
  private async readableRun(user: AuthUser, runId: string): Promise<RunRow> {
    return this.d.runs.startersRow(user, runId) || this.d.runs.accessibleRun(user, runId, 'view');
  }

  /**
   * What may have changed between a stream's checks and its guard (guardAccess), which the guard would
   * not hear. Someone lost access to a project here since `accessSeen` (taken before the stream's
   * access read): it may have been this reader, so `check` reads again (throwing as the first read
   * would) until no change comes during it. The request's session or token may have ended since it
   * was checked: the stream is refused. The caller then opens and guards the stream without a pause.
   */
  private async stillAllowed(user: AuthUser, req: FastifyRequest, accessSeen: number, check: () => Promise<unknown>) {
    while (this.d.projects.accessVersion !== accessSeen) {
      accessSeen = this.d.projects.accessVersion;
      await check();
    }
    if (this.d.liveStreams.endedSince(req.endingsBefore, user.id, req.credential)) throw unauthenticated('This session or token has ended; sign in again');
  }

  /**
   * Shared logs: the instance that runs a run sends its events to its own followers a moment before
   * they reach Redis, so a client resuming here may hold an id this instance has yet to read. Give
   * it a moment to arrive before taking the id for an unknown one (which starts the client over).
   */
  private caughtUp(key: string, after: number) {
    const log = this.d.runLog;
    if (log.lastId(key) >= after) return;
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stop();
        resolve();
      };
      const timer = setTimeout(done, CATCH_UP_MS);
      const stop = log.subscribe(key, () => {
        if (log.lastId(key) >= after) done();
      });
    });
  }

  /**
   * A run whose events left memory (finished long ago, or before a restart) replays from the database:
   * its text, its structured items (shots, movements) or media items (images, audio, clips), then its end.
   */
  private async replayFromDatabase(row: RunRow, after: number | null, req: FastifyRequest, reply: FastifyReply) {
    const active = row.status === 'running' || row.status === 'queued';
    if (after !== null && row.lastEventId !== null && after >= row.lastEventId) return reply.code(204).send();
    const mediaItems = await this.d.repo.items(row.id);
    const sse = withSeedCompat(req, openSse(req, reply, this.d.heartbeatMs));
    let id = after ?? 0;
    const send = (event: object, terminal = false) => sse.send({ id: ++id, json: JSON.stringify({ ...event, run_id: row.id, stage: row.stage }), terminal });
    // The client may hold part of the run already: tell it to start over, then send the whole.
    if (after !== null) send({ type: 'reset', reason: 'Replaying the saved run' });
    if (row.text) send({ type: 'token', content: row.text });
    const definition = this.d.runs.definitionOf(row.stage as StageKey);
    if (row.status === 'completed' && definition?.kind === 'llm' && definition.items) {
      const { key, event } = definition.items;
      for (const item of (row.output as Record<string, unknown[]> | null)?.[key] ?? []) send({ type: event, [event]: item });
    }
    for (const item of mediaItems) send({ type: item.kind, shot_id: item.shotId, [item.kind]: item.item });
    if (active) send({ type: 'stage_update', status: 'interrupted' }, true);
    else if (row.status === 'completed') send({ type: 'done', ...(definition?.kind === 'llm' && { full_text: row.text }), output: row.output, run: toRun(row) }, true);
    else if (row.status === 'failed') send({ type: 'error', ...((row.error as object) ?? { message: 'The generation failed', code: 'failed', retryable: true }) }, true);
    else send({ type: 'stage_update', status: row.status }, true);
    sse.end();
  }

  /**
   * One stream for every stage of a project. `tokens: false` leaves out token and progress events
   * (a page that follows the running run's own stream for those would otherwise get each token twice).
   */
  async followProject(user: AuthUser, projectId: string, req: FastifyRequest, reply: FastifyReply, opts: { tokens: boolean } = { tokens: true }) {
    const accessSeen = this.d.projects.accessVersion;
    // Both asked at once, one round trip: the runs in progress are sent only once access is granted.
    const [, active] = await Promise.all([this.d.projects.allows(user, projectId, 'view'), this.d.repo.activeOfProjectToFollow(projectId)]);
    const key = projectKey(projectId);
    const after = lastEventId(req);
    if (this.d.projectLog.attach) await this.d.projectLog.attach(key, true);
    if (this.shared && opts.tokens) {
      // A run whose start has left the project's log: its own log gives the text so far (read now,
      // since what follows must not wait).
      for (const run of active) if (textInProjectLog(this.d.projectLog.retained?.(key) ?? [], run.id) === null) await this.d.runLog.attach?.(runKey(run.id), true);
    }
    await this.stillAllowed(user, req, accessSeen, () => this.d.projects.allows(user, projectId, 'view'));
    // From here on everything is synchronous until subscribed, so no event can fall between replay and tail.
    // An id past the log's tip is not one of its own (the log was dropped when idle, or the server
    // restarted): like one from too far back, the client catches up from scratch.
    const known = after !== null && after <= this.d.projectLog.lastId(key);
    const missed = known ? this.d.projectLog.since(key, after, opts) : null;
    const sse = openSse(req, reply, this.d.heartbeatMs);
    const wanted = opts.tokens ? (e: LoggedEvent) => e : (e: LoggedEvent) => (isTokenOrProgress(e.json) ? null : e);
    const send = (e: LoggedEvent) => {
      const kept = wanted(e);
      if (kept) sse.send(kept);
    };
    this.guardAccess(sse, user, projectId, req);
    if (missed) {
      for (const e of missed) send(e);
    } else {
      // A newcomer (or a client too far behind, or past the tip) gets the runs in progress. These
      // catch-up events carry no id of their own (the log's ids belong to logged events); the project
      // update appended below gives the client its first id, so the ids it sees from here increase.
      if (after !== null) for (const run of active) sse.send(startingOver(run));
      for (const run of active) {
        sse.send({ id: null, json: JSON.stringify({ type: 'stage_update', run_id: run.id, stage: run.stage, status: 'running' }), terminal: false });
        const text = opts.tokens ? this.textSoFar(key, run.id) : '';
        if (text) sse.send({ id: null, json: JSON.stringify({ type: 'token', run_id: run.id, stage: run.stage, content: text }), terminal: false });
      }
    }
    const stop = this.d.projectLog.subscribe(key, send, opts);
    sse.onClose(() => {
      stop();
      // Like a finished run's, a project's log leaves memory once nobody follows it or writes to it.
      this.d.projectLog.expire(key, KEEP_IN_MEMORY_MS);
    });
    // Project updates are only published while someone listens, so every (re)connection starts
    // with the current state, appended to the log so its id is in order for everyone.
    const update = await this.projectUpdate(projectId);
    if (update) this.d.projectLog.append(key, update);
  }

  /**
   * A running run's text as sent in events so far. Shared logs: the part of it already in this
   * instance's copy of the project's log (the live tail follows from there, whoever runs it).
   */
  private textSoFar(projectLogKey: string, runId: string) {
    if (!this.shared) return this.d.runs.sentText(runId);
    // Not there (over 5,000 project events since the run began): its own log, which may be a batch
    // ahead of or behind the project's (a token might then repeat or be missing at the junction).
    return textInProjectLog(this.d.projectLog.retained?.(projectLogKey) ?? [], runId) ?? rebuildText(this.d.runLog.since(runKey(runId), 0) ?? []);
  }

  /**
   * Ends the stream once its reader loses access to the project. Called right after the stream's last
   * access check (stillAllowed), with nothing awaited since: the reader is re-checked at a change of the
   * project only when access to some project may have changed since (accessVersion), not at every run's
   * start and ending.
   */
  private guardAccess(sse: SseStream, user: AuthUser, projectId: string, req: FastifyRequest) {
    sse.onClose(this.d.liveStreams.track(user, req.credential, () => sse.end()));
    let checked = this.d.projects.accessVersion;
    const stop = this.d.projects.onChangeOf(projectId, async () => {
      if (sse.closed || this.d.projects.accessVersion === checked) return;
      checked = this.d.projects.accessVersion; // before the read it vouches for
      const reason = await this.d.projects.accessLoss(user.id, projectId);
      if (reason) {
        sse.send({ id: null, json: JSON.stringify({ type: 'access_revoked', project_id: projectId, reason }), terminal: true });
        sse.end();
      }
    });
    sse.onClose(stop);
  }

  /** The project's state as its followers are told it, in one read; null when the project is gone. */
  private async projectUpdate(projectId: string) {
    const now = await this.d.projectRepo.statusOf(projectId);
    if (!now) return null;
    return JSON.stringify({ type: 'project_update', project_id: projectId, status: now.status, pipeline_state: now.pipelineState, stages: now.stages.map(toStageState) });
  }

  private async publishProjectUpdate(projectId: string) {
    const key = projectKey(projectId);
    // Shared logs: the followers may be on another instance.
    if (this.d.projectLog.subscriberCount(key) === 0 && !(this.d.projectLog.followedAnywhere && (await this.d.projectLog.followedAnywhere(key)))) return;
    try {
      const update = await this.projectUpdate(projectId);
      if (update) this.d.projectLog.append(key, update);
    } catch {
      // The project may be deleted mid-way; nothing to publish then.
    }
  }
}

/**
 * `?compat=seed`: the seed's Vue client reads `full_text` from every token event, so this one response
 * adds the text so far to each (O(n²) bytes — only on request); everyone else keeps the deltas.
 */
function withSeedCompat(req: FastifyRequest, sse: SseStream): SseStream {
  if ((req.query as { compat?: string } | undefined)?.compat !== 'seed') return sse;
  let text = '';
  return {
    ...sse,
    get closed() {
      return sse.closed;
    },
    send(event) {
      if (event.json.startsWith('{"type":"reset"')) text = '';
      if (!event.json.startsWith('{"type":"token"')) return sse.send(event);
      const token = JSON.parse(event.json) as { content: string };
      text += token.content;
      sse.send({ ...event, json: JSON.stringify({ ...token, full_text: text }) });
    },
  };
}

/** A catch-up's `reset` for a run (no id of its own: the log's ids belong to logged events). */
const startingOver = (run: { id: string; stage: string }): SseEvent => ({
  id: null,
  json: JSON.stringify({ type: 'reset', run_id: run.id, stage: run.stage, reason: 'Cannot resume from your last event: starting over' }),
  terminal: false,
});

const isTokenOrProgress = (json: string) => json.startsWith('{"type":"token"') || json.startsWith('{"type":"progress"');

/** A run's text in a project's log, or null when the log no longer holds the run's start (nor a reset of it). */
function textInProjectLog(events: LoggedEvent[], runId: string): string | null {
  let text: string | null = null;
  for (const e of events) {
    if (!e.json.includes(runId)) continue;
    const event = JSON.parse(e.json) as { type: string; run_id?: string; status?: string; content?: string };
    if (event.run_id !== runId) continue;
    if ((event.type === 'stage_update' && event.status === 'running') || event.type === 'reset') text = '';
    else if (event.type === 'token' && text !== null) text += event.content;
  }
  return text;
}

/** The text of a run's own log (its tokens, what came before a reset discarded). */
function rebuildText(events: LoggedEvent[]) {
  let text = '';
  for (const e of events) {
    if (e.json.startsWith('{"type":"reset"')) text = '';
    else if (e.json.startsWith('{"type":"token"')) text += (JSON.parse(e.json) as { content: string }).content;
  }
  return text;
}

/**
 * For a newcomer: the text so far as one token event (carrying the last merged id, so a resume
 * continues after it), and of the progress events only the last, which says where the run stands (a
 * media run's next one may be minutes away, at its next finished shot).
 */
function newcomersCatchUp(events: LoggedEvent[]): LoggedEvent[] {
  const out: LoggedEvent[] = [];
  const lastProgress = events.findLast((e) => e.json.startsWith('{"type":"progress"'));
  let text = '';
  let lastTokenId = 0;
  const flush = () => {
    if (!text) return;
    out.push({ id: lastTokenId, json: JSON.stringify({ type: 'token', content: text }), terminal: false });
    text = '';
  };
  for (const e of events) {
    if (e.json.startsWith('{"type":"token"')) {
      text += (JSON.parse(e.json) as { content: string }).content;
      lastTokenId = e.id;
    } else if (e.json.startsWith('{"type":"reset"')) {
      text = ''; // what came before a reset was discarded anyway
      out.push(e);
    } else if (e.json.startsWith('{"type":"progress"') && e !== lastProgress) {
      continue;
    } else {
      flush();
      out.push(e);
    }
  }
  flush();
  return out;
}
