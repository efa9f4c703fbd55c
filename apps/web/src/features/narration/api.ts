import type { NarrationItem, NarrationOutput, NarrationSettings, Run, Subtitles, UpdateSubtitlesInput, VoiceList } from '@ai-story/contracts';
import { apiUrl, http } from '@/api/client';
import { runsApi } from '@/features/runs/api';

export type { NarrationItem, NarrationOutput, NarrationSettings, Subtitles, VoiceList };

/** The stage output's shape, when it is one (a stage before its first run has none). */
export const narrationOf = (output: unknown): NarrationItem[] => ((output as NarrationOutput | null)?.narration ?? []);

export const narrationApi = {
  start: (projectId: string, input: { shot_ids?: string[]; local?: boolean }, providerId?: string): Promise<Run> =>
    runsApi.start(projectId, 'narration', { input, ...(providerId && { provider_id: providerId }) }),
  settings: (projectId: string) => http.get<NarrationSettings>(`/projects/${projectId}/stages/narration/settings/`),
  saveSettings: (projectId: string, patch: Partial<NarrationSettings>) => http.patch<NarrationSettings>(`/projects/${projectId}/stages/narration/settings/`, patch),
  voices: (projectId: string) => http.get<VoiceList>(`/projects/${projectId}/narration/voices/`),
  /** A short sample of a voice, as audio bytes for a blob URL. */
  async sample(projectId: string, voice: string, speed: number): Promise<Blob> {
    const res = await fetch(apiUrl(`/projects/${projectId}/narration/voice-sample/`), {
      method: 'POST',
      credentials: 'include',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ voice, speed }),
    });
    if (!res.ok) throw new Error((await res.json().catch(() => null))?.error?.message ?? `HTTP ${res.status}`);
    return res.blob();
  },
  /** One sentence rewritten and spoken again (a narration run over that shot). */
  editSentence: (projectId: string, shotId: string, index: number, text: string) =>
    http.patch<Run>(`/projects/${projectId}/narration/${shotId}/sentences/${index}/`, { text }),
  subtitles: (projectId: string) => http.get<Subtitles>(`/projects/${projectId}/subtitles/`),
  saveSubtitles: (projectId: string, body: UpdateSubtitlesInput) => http.put<Subtitles>(`/projects/${projectId}/subtitles/`, body),
};
