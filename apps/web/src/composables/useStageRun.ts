import type { ProjectDetail, ProjectStage, Run } from '@ai-story/contracts';
import { computed, ref, shallowRef, watch } from 'vue';
import { isApiError } from '@/api/client';
import { useProjectsStore } from '@/features/projects/projects.store';
import { runsApi } from '@/features/runs/api';
import { useRunStream, type RunPhase } from './useRunStream';

export interface UseStageRunOptions {
  /** The stage as the project stream keeps it (status, current run). */
  stage: () => ProjectStage;
  /** The stage has a saved output (decides "completed" vs "idle" when no run is followed). */
  hasOutput: () => boolean;
  /** The stage's latest run, once on load (its inputs fill the form as it was; its text, if unsaved). */
  adoptRun?: (run: Run) => void;
  /** A followed run ended (done, failed, stopped). */
  onFinished?: (phase: RunPhase, run: Run | null) => void | Promise<void>;
}

/**
 * Everything a stage tab needs around one run, for every stage alike: follow the stage's run on
 * load and whenever one starts elsewhere (the pipeline, a retry, another tab or a teammate) — once,
 * even when both tell us about the same run —, start one (a 409 joins the run already going), stop
 * it, and say where it is. The stream itself is useRunStream; the wording is the panel's
 * (StageRunPanel), so this stays free of UI and runs in a test's effectScope.
 */
export function useStageRun(options: UseStageRunOptions) {
  const stream = useRunStream({ onFinished: finished });
  /** The run followed now, or the one that ended last (its model, error, input). */
  const activeRun = ref<Run | null>(null);
  const lastRun = ref<Run | null>(null);
  const starting = ref(false);
  const stopping = ref(false);
  /** Why the last start was refused (an ApiError, a network failure), for the panel to word. */
  const startError = shallowRef<unknown>(null);
  const fieldErrors = ref<Record<string, string>>({});
  /** Set when a start met a run already going and follows that one instead. */
  const joinedRunId = ref<string | null>(null);
  /** Why the last stop was refused. */
  const stopError = shallowRef<unknown>(null);
  /** Bumped whenever the history may have changed. */
  const historyKey = ref(0);

  const phase = computed<RunPhase>(() => {
    if (stream.runId.value) return stream.phase.value;
    if (lastRun.value && lastRun.value.status !== 'completed') return lastRun.value.status;
    return options.hasOutput() ? 'completed' : 'idle';
  });
  const busy = computed(() => stream.live.value || starting.value);
  const runError = computed(() => stream.error.value ?? (stream.runId.value ? null : (lastRun.value?.error ?? null)));
  const modelOfRun = computed(() => activeRun.value ?? lastRun.value);

  /**
   * A run whose details are on the way: the tab's own load and the project stream's first update
   * often name the same run at once, and attaching twice would throw the first connection away.
   */
  let pendingRunId: string | null = null;

  function follow(id: string, run: Run | null = null) {
    activeRun.value = run;
    lastRun.value = null;
    stream.attach(id, { startedAt: run?.started_at });
  }

  /** Fetches a run's details, then follows it unless another path already did. */
  async function followOnce(id: string) {
    pendingRunId = id;
    const run = await runsApi.get(id).catch(() => null);
    if (pendingRunId === id) pendingRunId = null;
    if (id !== stream.runId.value) follow(id, run);
  }

  async function finished(final: RunPhase, run: Run | null) {
    stopping.value = false;
    if (run) activeRun.value = run;
    historyKey.value++;
    await options.onFinished?.(final, run);
  }

  async function loadCurrentRun() {
    const id = options.stage().current_run_id;
    if (!id) return;
    pendingRunId = id;
    try {
      const run = await runsApi.get(id);
      options.adoptRun?.(run);
      if (id === stream.runId.value) return;
      if (run.status === 'running' || run.status === 'queued') follow(run.id, run);
      else lastRun.value = run;
    } catch {
      // no run details: the saved output alone still makes a useful page
    } finally {
      if (pendingRunId === id) pendingRunId = null;
    }
  }

  void loadCurrentRun();

  // A run started elsewhere (the one-click pipeline, a retry, another tab or teammate): follow it too.
  watch(
    () => [options.stage().status, options.stage().current_run_id] as const,
    async ([status, id]) => {
      if (status !== 'running' || !id || id === stream.runId.value || id === pendingRunId) return;
      await followOnce(id);
      historyKey.value++;
    },
  );

  /** Starts a run; a conflict joins the run already going, field errors land in `fieldErrors`. */
  async function start(request: () => Promise<Run>): Promise<boolean> {
    fieldErrors.value = {};
    startError.value = null;
    joinedRunId.value = null;
    starting.value = true;
    try {
      const run = await request();
      follow(run.id, run);
      historyKey.value++;
      return true;
    } catch (err) {
      const active = isApiError(err) && err.code === 'conflict' ? err.details.active_run_id : undefined;
      if (typeof active === 'string') {
        joinedRunId.value = active;
        if (active !== stream.runId.value && active !== pendingRunId) await followOnce(active);
      } else {
        if (isApiError(err)) fieldErrors.value = Object.fromEntries(Object.entries(err.fields).map(([k, v]) => [k.replace(/^(body\.)?input\./, ''), v]));
        startError.value = err;
      }
      return false;
    } finally {
      starting.value = false;
    }
  }

  async function stop() {
    const id = stream.runId.value;
    if (!id) return;
    stopping.value = true;
    stopError.value = null;
    try {
      await runsApi.cancel(id);
    } catch (err) {
      stopping.value = false;
      stopError.value = err;
    }
  }

  /** After a restore or a saved edit: forget the followed run, the saved output is the truth again. */
  function forget() {
    stream.clear();
    lastRun.value = null;
    activeRun.value = null;
    historyKey.value++;
  }

  return {
    stream,
    phase,
    busy,
    runError,
    modelOfRun,
    activeRun,
    lastRun,
    starting,
    stopping,
    startError,
    stopError,
    joinedRunId,
    fieldErrors,
    historyKey,
    start,
    stop,
    follow,
    forget,
  };
}

export type StageRun = ReturnType<typeof useStageRun>;

/**
 * A stage tab's start: its run (useStageRun) for the stage it shows, whether the reader may edit,
 * and the project read again whenever a run ends (statuses, outputs and staleness change then),
 * before the tab's own `onFinished`.
 */
export function useStageTab(props: { project: ProjectDetail; stage: ProjectStage }, options: Omit<UseStageRunOptions, 'stage'>) {
  const projects = useProjectsStore();
  const canEdit = computed(() => props.project.access !== 'viewer');
  const run = useStageRun({
    ...options,
    stage: () => props.stage,
    onFinished: async (phase, finishedRun) => {
      await projects.reloadCurrent();
      await options.onFinished?.(phase, finishedRun);
    },
  });
  return { run, stream: run.stream, canEdit, stage: props.stage.stage_type, projectId: props.project.id, reloadProject: () => projects.reloadCurrent() };
}

export type StageTab = ReturnType<typeof useStageTab>;
