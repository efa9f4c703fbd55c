import type { ExportOutput, ExportPreview, ExportSettings, Run } from '@ai-story/contracts';
import { ApiError, apiUrl, http } from '@/api/client';
import { runsApi } from '@/features/runs/api';

export const exportApi = {
  start: (projectId: string): Promise<Run> => runsApi.start(projectId, 'export', { input: {} }),
  preview: (projectId: string) => http.get<ExportPreview>(`/projects/${projectId}/export/preview/`),
  settings: (projectId: string) => http.get<ExportSettings>(`/projects/${projectId}/stages/export/settings/`),
  updateSettings: (projectId: string, patch: Partial<ExportSettings>) => http.patch<ExportSettings>(`/projects/${projectId}/stages/export/settings/`, patch),
  /** The file itself is the body; the server checks by its bytes that it is audio. */
  async uploadMusic(projectId: string, file: File): Promise<{ media_id: string; url: string }> {
    const res = await fetch(apiUrl(`/projects/${projectId}/stages/export/music/`), { method: 'POST', credentials: 'include', headers: { 'Content-Type': file.type || 'application/octet-stream' }, body: file });
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, body?.error?.code ?? 'validation_error', body?.error?.message ?? res.statusText, body?.error?.details);
    return body;
  },
};

/** A media URL that downloads under `name` (the server keeps the stored file's extension). */
export const downloadUrl = (url: string, name: string) => `${url}?download=1&name=${encodeURIComponent(name)}`;

export function exportOf(output: unknown): ExportOutput | null {
  const o = output as Partial<ExportOutput> | null;
  return o && typeof o === 'object' && o.video?.url ? (o as ExportOutput) : null;
}
