import type { CreateProjectInput, Project, ProjectDetail, ProjectStage, UpdateProjectInput } from '@ai-story/contracts';
import { http, type Page } from '@/api/client';

export interface ProjectQuery {
  page?: number;
  page_size?: number;
  search?: string;
}

export const projectsApi = {
  list: (query: ProjectQuery, signal?: AbortSignal) => http.get<Page<Project>>('/projects/', { ...query }, signal),
  get: (id: string) => http.get<ProjectDetail>(`/projects/${id}/`),
  create: (body: CreateProjectInput) => http.post<ProjectDetail>('/projects/', body),
  update: (id: string, body: UpdateProjectInput) => http.patch<ProjectDetail>(`/projects/${id}/`, body),
  remove: (id: string) => http.delete(`/projects/${id}/`),
  stages: (id: string) => http.get<ProjectStage[]>(`/projects/${id}/stages/`),
};
