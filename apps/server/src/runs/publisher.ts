import type { RunEvent, StageKey } from '@ai-story/contracts';
import type { EventLog } from './event-log.ts';

export const runKey = (runId: string) => `run:${runId}`;
export const projectKey = (projectId: string) => `project:${projectId}`;

/**
 * Finished runs (and projects nobody follows) stay replayable from memory this long; later the
 * database serves them (reset, text, items and ending: the same to a client). Long enough for a
 * reload or a reconnect; short because what is kept grows with the runs finished in that time
 * (a finished run's log holds its text in its tokens, and in its ending's full_text and output).
 */
export const KEEP_IN_MEMORY_MS = 60_000;

/** An event as a stage or the engine writes it: the publisher adds the run and stage (STYLE §11). */
export type RunEventBody = RunEvent extends infer E ? (E extends RunEvent ? Omit<E, 'run_id' | 'stage'> : never) : never;

export interface RunTarget {
  runId: string;
  projectId: string;
  stage: StageKey;
}

/** A running run's target with what its every token needs built once: its logs' keys, its project-stream tail. */
export interface TokenTarget extends RunTarget {
  runKey: string;
  projectKey: string;
  tokenSuffix: string;
}

export const tokenTarget = (t: RunTarget): TokenTarget => ({
  ...t,
  runKey: runKey(t.runId),
  projectKey: projectKey(t.projectId),
  tokenSuffix: `,"run_id":"${t.runId}","stage":"${t.stage}"}`,
});

/**
 * Writes a run's events into its own log and its project's log (each numbered on its own). Typed by
 * the contracts' union, so a misspelt field is a compile error here, not a warning in a browser.
 */
export class RunPublisher {
  constructor(
    readonly runLog: EventLog,
    readonly projectLog: EventLog,
  ) {}

  emit(target: RunTarget, event: RunEventBody, terminal = false) {
    const body = { ...event, run_id: target.runId, stage: target.stage };
    const json = JSON.stringify(body);
    // A run's ending is kept as its body, whose text and output the run holds anyway (RebuiltEvent).
    const rebuild = event.type === 'done' ? () => JSON.stringify(body) : undefined;
    this.runLog.append(runKey(target.runId), json, terminal, rebuild);
    this.projectLog.append(projectKey(target.projectId), json, false, rebuild);
  }

  /**
   * The hot path: one token event. In a run's own stream a token needs no run id or stage (the URL
   * says which run it is); the project stream needs both.
   */
  token(target: TokenTarget, content: string) {
    this.runLog.appendToken(target.runKey, content, '}');
    this.projectLog.appendToken(target.projectKey, content, target.tokenSuffix);
  }

  lastId = (runId: string) => this.runLog.lastId(runKey(runId));
  /** A run whose end is saved: its log may drop what the database now holds (logs that can), and keep `text` (the run's) once. */
  compact(target: RunTarget, text: string) {
    this.runLog.compact?.(runKey(target.runId), text);
  }
  /** A finished run's log, and its project's once nobody follows it or writes to it, leave memory after `delayMs`. */
  expire(target: RunTarget, delayMs: number) {
    this.runLog.expire(runKey(target.runId), delayMs);
    this.projectLog.expire(projectKey(target.projectId), delayMs);
  }
}
