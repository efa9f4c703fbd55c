import type { ApiToken, CreateUserInput, SettingsResponse, UpdateSettingsInput, UpdateUserInput, User } from '@ai-story/contracts';
import { http, type Page } from '@/api/client';

export const usersApi = {
  list: (query: { page?: number; page_size?: number; search?: string }) => http.get<Page<User>>('/users/', { ...query }),
  create: (body: CreateUserInput) => http.post<User>('/users/', body),
  update: (id: string, body: UpdateUserInput) => http.patch<User>(`/users/${id}/`, body),
  remove: (id: string) => http.delete(`/users/${id}/`),
  tokens: (id: string) => http.get<ApiToken[]>(`/users/${id}/tokens/`),
  revokeToken: (id: string, tokenId: string) => http.delete(`/users/${id}/tokens/${tokenId}/`),
  settings: () => http.get<SettingsResponse>('/settings/'),
  updateSettings: (body: UpdateSettingsInput) => http.patch<SettingsResponse>('/settings/', body),
};
