/**
 * The model a user chose for a project's stage, kept across reloads in this browser (localStorage):
 * "自动" is the empty string, as the select has it. Storage may be blocked (privacy mode): then the
 * choice simply lasts for the page.
 */
const key = (projectId: string, stage: string) => `ai-story.model.${projectId}.${stage}`;

export function rememberedModel(projectId: string, stage: string): string | null {
  try {
    return localStorage.getItem(key(projectId, stage));
  } catch {
    return null;
  }
}

export function rememberModel(projectId: string, stage: string, providerId: string) {
  try {
    if (providerId) localStorage.setItem(key(projectId, stage), providerId);
    else localStorage.removeItem(key(projectId, stage));
  } catch {
    // nothing to do: the choice lasts for this page
  }
}
