import type { ProjectStage, Run } from '@ai-story/contracts';
import { computed, onMounted, ref, watch } from 'vue';
import { useI18n } from 'vue-i18n';
import { isApiError } from '@/api/client';
import { errorMessage, notify } from '@/composables/useFeedback';
import { runsApi } from '@/features/runs/api';
import { useRunStream, type RunPhase } from './useRunStream';

export interface UseStageRunOptions {
  /** The stage as the project stream keeps it (status, current run). */
  stage: () => ProjectStage;
  /** The stage has a saved output (decides "completed" vs "idle" when no run is followed). */
  hasOutput: () => boolean;
  /** The inputs of the stage's latest run, once on load (to fill the form as it was). */
  adoptInput?: (input: Record<string, unknown>) => void;
  /** A followed run ended (done, failed, stopped). */
  onFinished?: (phase: RunPhase, run: Run | null) => void | Promise<void>;
}

/**
 * What a structured stage tab (storyboard, camera) needs around one run: follow the stage's run
 * on load and whenever one starts elsewhere (the pipeline, a retry, a teammate), start one (a 409
 * joins the run already going), stop it, and say where it is. The stream itself is useRunStream.
 */
export function useStageRun(options: UseStageRunOptions) {
  const { t } = useI18n();
  const stream = useRunStream({ onFinished: finished });
  /** The run followed now, or the one that ended last (its model, error, input). */
  const activeRun = ref<Run | null>(null);
  const lastRun = ref<Run | null>(null);
  const starting = ref(false);
  const stopping = ref(false);
  const startError = ref('');
  const fieldErrors = ref<Record<string, string>>({});
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

  function follow(id: string, run: Run | null = null) {
    activeRun.value = run;
    lastRun.value = null;
    stream.attach(id, { startedAt: run?.started_at });
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
    try {
      const run = await runsApi.get(id);
      if (run.input && typeof run.input === 'object') options.adoptInput?.(run.input as Record<string, unknown>);
      if (run.status === 'running' || run.status === 'queued') follow(run.id, run);
      else lastRun.value = run;
    } catch {
      // no run details: the saved output alone still makes a useful page
    }
  }

  onMounted(() => void loadCurrentRun());

  // A run started elsewhere (the one-click pipeline, a retry, another tab or teammate): follow it too.
  watch(
    () => [options.stage().status, options.stage().current_run_id] as const,
    async ([status, id]) => {
      if (status !== 'running' || !id || id === stream.runId.value) return;
      follow(id, await runsApi.get(id).catch(() => null));
      historyKey.value++;
    },
  );

  /** Starts a run; a conflict joins the run already going, field errors land in `fieldErrors`. */
  async function start(request: () => Promise<Run>): Promise<boolean> {
    fieldErrors.value = {};
    startError.value = '';
    starting.value = true;
    try {
      const run = await request();
      follow(run.id, run);
      historyKey.value++;
      return true;
    } catch (err) {
      const active = isApiError(err) && err.code === 'conflict' ? err.details.active_run_id : undefined;
      if (typeof active === 'string') {
        notify.info(t('rewrite.alreadyRunning'));
        follow(active, await runsApi.get(active).catch(() => null));
      } else if (isApiError(err) && Object.keys(err.fields).length) {
        fieldErrors.value = Object.fromEntries(Object.entries(err.fields).map(([k, v]) => [k.replace(/^(body\.)?input\./, ''), v]));
        startError.value = err.message;
      } else {
        startError.value = errorMessage(err);
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
    try {
      await runsApi.cancel(id);
    } catch (err) {
      stopping.value = false;
      notify.error(err);
    }
  }

  /** After a restore: forget the followed run, the saved output is the truth again. */
  function forget() {
    stream.clear();
    lastRun.value = null;
    activeRun.value = null;
    historyKey.value++;
  }

  return { stream, phase, busy, runError, modelOfRun, activeRun, lastRun, starting, stopping, startError, fieldErrors, historyKey, start, stop, follow, forget };
}
