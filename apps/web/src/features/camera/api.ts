import type { Movement, Run, UpdateMovementInput } from '@ai-story/contracts';
import { http, type Page } from '@/api/client';
import { runsApi } from '@/features/runs/api';

/** A movement as the list endpoint answers it: saved, tied to its shot. */
export type SavedMovement = Movement & { id: string; shot_id: string };

export const cameraApi = {
  /** Every shot's movement, or only those of `shotIds` (regenerating one shot). */
  start: (projectId: string, shotIds?: string[], providerId?: string): Promise<Run> =>
    runsApi.start(projectId, 'camera', { input: shotIds ? { shot_ids: shotIds } : {}, ...(providerId && { provider_id: providerId }) }),
  list: (projectId: string) => http.get<Page<SavedMovement>>(`/projects/${projectId}/camera-movements/`),
  update: (id: string, body: UpdateMovementInput) => http.patch<SavedMovement>(`/camera-movements/${id}/`, body),
};
