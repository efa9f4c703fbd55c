import type { Character, CharacterPicture, ImageEstimate, ImageItem, ImageOutput, ImageSettings, Run } from '@ai-story/contracts';
import { apiUrl, ApiError, http } from '@/api/client';
import { runsApi } from '@/features/runs/api';

export interface MediaUsageInfo {
  files: number;
  bytes: number;
  unpicked: { rows: number; bytes: number };
}

export const imagesApi = {
  /** Every shot (no `shotIds`), or some shots again with their new prompts: their candidates are added. */
  start: (projectId: string, opts: { shotIds?: string[]; promptOverrides?: Record<string, string>; providerId?: string }): Promise<Run> =>
    runsApi.start(projectId, 'image', {
      input: { ...(opts.shotIds && { shot_ids: opts.shotIds }), ...(opts.promptOverrides && { prompt_overrides: opts.promptOverrides }) },
      ...(opts.providerId && { provider_id: opts.providerId }),
    }),
  settings: (projectId: string) => http.get<ImageSettings>(`/projects/${projectId}/stages/image/settings/`),
  saveSettings: (projectId: string, patch: Partial<ImageSettings>) => http.patch<ImageSettings>(`/projects/${projectId}/stages/image/settings/`, patch),
  estimate: (projectId: string, providerId?: string) => http.get<ImageEstimate>(`/projects/${projectId}/stages/image/estimate/`, { provider_id: providerId }),
  choose: (projectId: string, imageId: string) => http.post<ImageOutput>(`/projects/${projectId}/images/${imageId}/choose/`),
  characters: (projectId: string) => http.get<{ characters: Character[] }>(`/projects/${projectId}/characters/`),
  saveCharacters: (projectId: string, characters: Character[]) => http.put<{ characters: Character[] }>(`/projects/${projectId}/characters/`, { characters }),
  suggestCharacters: (projectId: string) => http.post<{ characters: Character[]; method: 'model' | 'names'; message: string }>(`/projects/${projectId}/characters/suggest/`),
  usage: (projectId: string) => http.get<MediaUsageInfo>(`/projects/${projectId}/media/usage/`),
  cleanUp: (projectId: string) => http.post<{ removed_rows: number; removed_files: number; freed_bytes: number }>(`/projects/${projectId}/media/clean-up/`),
  upload: (projectId: string, shotId: string, file: File) => postFile<ImageItem>(`/projects/${projectId}/storyboards/${shotId}/images/`, file),
  /** A character's own picture: stored in the project, then named by the characters list. */
  uploadCharacterPicture: (projectId: string, file: File) => postFile<CharacterPicture>(`/projects/${projectId}/characters/pictures/`, file),
};

/** The file itself is the body (no multipart): the server checks its bytes, not its name. */
async function postFile<T>(path: string, file: File): Promise<T> {
  const res = await fetch(apiUrl(path), {
    method: 'POST',
    credentials: 'include',
    headers: { Accept: 'application/json', 'Content-Type': file.type.startsWith('image/') ? file.type : 'application/octet-stream' },
    body: file,
  });
  const payload = (await res.json().catch(() => null)) as { error?: { code: string; message: string; details?: Record<string, unknown> } } | null;
  if (!res.ok) throw new ApiError(res.status, (payload?.error?.code ?? 'internal_error') as ApiError['code'], payload?.error?.message ?? `HTTP ${res.status}`, payload?.error?.details as never);
  return payload as unknown as T;
}
