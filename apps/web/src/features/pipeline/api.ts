import type { ProjectDetail, Run, StageKey } from '@ai-story/contracts';
import { http } from '@/api/client';

/** The one-click pipeline (DESIGN §5): every stage it starts is an ordinary run. */
export const pipelineApi = {
  /** From the first stage not done, or again from `fromStage` (it and every later stage). */
  execute: (projectId: string, fromStage?: StageKey) => http.post<ProjectDetail>(`/projects/${projectId}/execute/`, fromStage ? { from_stage: fromStage } : {}),
  /** Stops after the running stage; 409 `conflict` when no pipeline is going. */
  pause: (projectId: string) => http.post<ProjectDetail>(`/projects/${projectId}/pause/`),
  resume: (projectId: string) => http.post<ProjectDetail>(`/projects/${projectId}/resume/`),
  /** Runs one stage again with its default input. */
  retry: (projectId: string, stage: StageKey) => http.post<Run>(`/projects/${projectId}/stages/${stage}/retry/`),
  skip: (projectId: string, stage: StageKey) => http.post<ProjectDetail>(`/projects/${projectId}/stages/${stage}/skip/`),
};
