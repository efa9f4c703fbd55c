import type { RewriteInput, Run } from '@ai-story/contracts';
import { runsApi } from '@/features/runs/api';

/** What the rewrite form sends: the stage input of DESIGN §5 (defaults filled by the server). */
export type RewriteRequest = Pick<RewriteInput, 'original_text' | 'style'> & { instructions?: string; target_length?: number };

export const rewriteApi = {
  start: (projectId: string, input: RewriteRequest, providerId?: string): Promise<Run> =>
    runsApi.start(projectId, 'rewrite', { input, ...(providerId && { provider_id: providerId }) }),
  /** A hand edit becomes the current version (and a new entry in the history). */
  saveEdit: (projectId: string, originalText: string, rewrittenText: string): Promise<Run> =>
    runsApi.editOutput(projectId, 'rewrite', { original_text: originalText, rewritten_text: rewrittenText }),
};
