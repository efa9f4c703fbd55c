import type {
  CreatePromptSetInput,
  ProjectPromptSet,
  PromptSet,
  PromptSetDetail,
  PromptTemplate,
  PromptTemplateVersion,
  TestTemplateInput,
  TestTemplateResult,
  UpdatePromptSetInput,
} from '@ai-story/contracts';
import { http, type Page } from '@/api/client';

export const promptsApi = {
  sets: () => http.get<Page<PromptSet>>('/prompts/sets/', { page_size: 100 }),
  set: (id: string) => http.get<PromptSetDetail>(`/prompts/sets/${id}/`),
  createSet: (body: CreatePromptSetInput) => http.post<PromptSetDetail>('/prompts/sets/', body),
  updateSet: (id: string, body: UpdatePromptSetInput) => http.patch<PromptSetDetail>(`/prompts/sets/${id}/`, body),
  removeSet: (id: string) => http.delete(`/prompts/sets/${id}/`),
  /** Saves the content as the template's next version; 400 names unknown variables or the syntax error. */
  saveTemplate: (id: string, content: string) => http.patch<PromptTemplate>(`/prompts/templates/${id}/`, { content }),
  versions: (id: string, page = 1, pageSize = 50) => http.get<Page<PromptTemplateVersion>>(`/prompts/templates/${id}/versions/`, { page, page_size: pageSize }),
  restore: (id: string, version: number) => http.post<PromptTemplate>(`/prompts/templates/${id}/versions/${version}/restore/`),
  /** Renders (unsaved) content with the stage's sample values; changes nothing. */
  test: (id: string, body: TestTemplateInput) => http.post<TestTemplateResult>(`/prompts/templates/${id}/test/`, body),
  projectSet: (projectId: string) => http.get<ProjectPromptSet>(`/projects/${projectId}/prompt-set/`),
  setProjectSet: (projectId: string, setId: string | null) => http.put<ProjectPromptSet>(`/projects/${projectId}/prompt-set/`, { prompt_set_id: setId }),
};
