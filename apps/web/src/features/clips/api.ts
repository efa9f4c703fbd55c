import type { Clip, ClipMethod, Run, VideoSettings } from '@ai-story/contracts';
import { http } from '@/api/client';
import { runsApi } from '@/features/runs/api';

export const clipsApi = {
  /** Every shot (or the stale ones), or only `shotIds`; `force` makes a new take even when a clip is cached. */
  start: (projectId: string, opts: { shotIds?: string[]; force?: boolean } = {}): Promise<Run> =>
    runsApi.start(projectId, 'video', { input: { ...(opts.shotIds && { shot_ids: opts.shotIds }), ...(opts.force && { force: true }) } }),
  settings: (projectId: string) => http.get<VideoSettings>(`/projects/${projectId}/stages/video/settings/`),
  updateSettings: (projectId: string, body: Partial<VideoSettings>) => http.patch<VideoSettings>(`/projects/${projectId}/stages/video/settings/`, body),
  /** A shot's own clip method; null follows the project. */
  setShotMethod: (shotId: string, method: ClipMethod | null) => http.patch(`/storyboards/${shotId}/`, { media_settings: { video: { method } } }),
};

/** The clips of a stage output or a run, when it has them. */
export function clipsOf(output: unknown): Clip[] {
  const clips = (output as { clips?: unknown } | null)?.clips;
  return Array.isArray(clips) ? (clips as Clip[]) : [];
}
