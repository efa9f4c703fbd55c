import type { Run, StageKey, StartRunInput } from '@ai-story/contracts';
import { http, type Page } from '@/api/client';

export const runsApi = {
  /** 202 with the new run; 409 `conflict` with `details.active_run_id` when one is already going. */
  start: (projectId: string, stage: StageKey, body: StartRunInput) => http.post<Run>(`/projects/${projectId}/stages/${stage}/runs/`, body),
  get: (runId: string) => http.get<Run>(`/runs/${runId}/`),
  cancel: (runId: string) => http.post<Run>(`/runs/${runId}/cancel/`),
  restore: (runId: string) => http.post<Run>(`/runs/${runId}/restore/`),
  /** Newest first. */
  history: (projectId: string, stage: StageKey, page = 1, pageSize = 20) =>
    http.get<Page<Run>>(`/projects/${projectId}/stages/${stage}/runs/`, { page, page_size: pageSize }),
  /** A hand edit of the stage's output, saved as a new version (answers the version's run). */
  editOutput: (projectId: string, stage: StageKey, output: Record<string, unknown>) => http.patch<Run>(`/projects/${projectId}/stages/${stage}/`, { output }),
};
