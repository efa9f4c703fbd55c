import type { CreateShotInput, Run, Shot, StoryboardRunInput, UpdateShotInput } from '@ai-story/contracts';
import { http, type Page } from '@/api/client';
import { runsApi } from '@/features/runs/api';

/** A shot as the list endpoint answers it: saved, so it has an id. */
export type SavedShot = Shot & { id: string };

export interface ShotList extends Page<SavedShot> {
  total_duration_seconds: number;
}

/** What the storyboard form sends; the server fills the text (the current rewrite) and defaults. */
export type StoryboardRequest = Partial<StoryboardRunInput>;
export type ShotField = keyof UpdateShotInput;

export const storyboardApi = {
  start: (projectId: string, input: StoryboardRequest, providerId?: string): Promise<Run> =>
    runsApi.start(projectId, 'storyboard', { input, ...(providerId && { provider_id: providerId }) }),
  list: (projectId: string) => http.get<ShotList>(`/projects/${projectId}/storyboards/`),
  add: (projectId: string, body: CreateShotInput) => http.post<SavedShot>(`/projects/${projectId}/storyboards/`, body),
  update: (shotId: string, body: UpdateShotInput) => http.patch<SavedShot>(`/storyboards/${shotId}/`, body),
  remove: (shotId: string) => http.delete(`/storyboards/${shotId}/`),
  /** Every shot id of the project, in the new order; answers the renumbered list. */
  reorder: (projectId: string, ids: string[]) => http.post<ShotList>(`/projects/${projectId}/storyboards/reorder/`, { ids }),
};
