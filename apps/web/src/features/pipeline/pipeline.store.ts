import type { ProjectEvent, StageKey } from '@ai-story/contracts';
import { defineStore } from 'pinia';
import { reactive, ref } from 'vue';

export interface StageProgress {
  run_id: string;
  tokens: number;
  tokens_per_s: number;
  elapsed_ms: number;
  eta_ms: number | null;
  /** Media stages: share done, 0..100, when the server counted it. */
  percent: number | null;
  /** Shots, movements or media items streamed so far (structured stages). */
  items: number;
}

/**
 * Live progress of the open project's running stages, from the project stream (one connection per
 * project): the header's stepper shows it for whichever stage runs, whichever tab is open.
 */
export const usePipelineStore = defineStore('pipeline', () => {
  const projectId = ref<string | null>(null);
  const progress = reactive<Partial<Record<StageKey, StageProgress>>>({});
  /** Pause was asked for and the running stage has not finished yet. */
  const pausing = ref(false);

  function reset(id: string | null) {
    projectId.value = id;
    for (const key of Object.keys(progress) as StageKey[]) delete progress[key];
    pausing.value = false;
  }

  function entry(stage: StageKey, runId: string): StageProgress {
    const current = progress[stage];
    if (current && current.run_id === runId) return current;
    progress[stage] = { run_id: runId, tokens: 0, tokens_per_s: 0, elapsed_ms: 0, eta_ms: null, percent: null, items: 0 };
    return progress[stage]!;
  }

  function applyEvent(event: ProjectEvent) {
    switch (event.type) {
      case 'stage_update':
        if (event.status === 'running' || event.status === 'queued') entry(event.stage, event.run_id);
        else delete progress[event.stage];
        break;
      case 'progress':
        Object.assign(entry(event.stage, event.run_id), {
          tokens: event.tokens ?? 0,
          tokens_per_s: event.tokens_per_s ?? 0,
          elapsed_ms: event.elapsed_ms,
          eta_ms: event.eta_ms ?? null,
          percent: event.percent ?? null,
        });
        break;
      case 'shot':
      case 'movement':
      case 'image':
      case 'audio':
      case 'clip':
        entry(event.stage, event.run_id).items++;
        break;
      case 'reset':
        if (progress[event.stage]) progress[event.stage]!.items = 0;
        break;
      case 'done':
      case 'error':
        delete progress[event.stage];
        break;
      case 'project_update':
        if (event.status !== 'processing') pausing.value = false;
        for (const s of event.stages) if (s.status !== 'running') delete progress[s.stage_type];
        break;
      case 'token':
      case 'info':
      case 'task':
      case 'access_revoked':
        break;
      default: {
        const unhandled: never = event;
        console.warn('[pipeline] unhandled event', unhandled);
      }
    }
  }

  /**
   * Progress as the open tab's own run stream sees it: the project stream leaves progress out (one
   * stream per tab carries the tokens), so the stepper learns it here for the stage on screen.
   */
  function track(stage: StageKey, runId: string, p: Pick<StageProgress, 'tokens' | 'tokens_per_s' | 'elapsed_ms' | 'eta_ms' | 'percent'>) {
    Object.assign(entry(stage, runId), p);
  }

  return { projectId, progress, pausing, reset, applyEvent, track };
});

/** Share of a run done, 0..1, when the server gave an estimate. */
export function progressShare(p: StageProgress | undefined): number | null {
  if (p?.percent !== null && p?.percent !== undefined) return Math.min(0.99, p.percent / 100);
  if (!p || p.eta_ms === null || p.elapsed_ms + p.eta_ms <= 0) return null;
  return Math.min(0.99, p.elapsed_ms / (p.elapsed_ms + p.eta_ms));
}
