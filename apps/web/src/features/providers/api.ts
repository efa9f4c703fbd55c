import type {
  CreateProviderInput,
  Provider,
  ProviderSummary,
  ProviderTestResponse,
  ProviderUsageResponse,
  UpdateProviderInput,
} from '@ai-story/contracts';
import { http } from '@/api/client';

export const providersApi = {
  /** Admins get full providers; everyone else the reduced summary (DESIGN §5). */
  list: () => http.get<(Provider | ProviderSummary)[]>('/models/providers/'),
  create: (body: CreateProviderInput) => http.post<Provider>('/models/providers/', body),
  update: (id: string, body: UpdateProviderInput) => http.patch<Provider>(`/models/providers/${id}/`, body),
  remove: (id: string) => http.delete(`/models/providers/${id}/`),
  test: (id: string) => http.post<ProviderTestResponse>(`/models/providers/${id}/test/`),
  usage: (id: string, days = 14) => http.get<ProviderUsageResponse>(`/models/providers/${id}/usage/`, { days }),
};

export const isFullProvider = (p: Provider | ProviderSummary): p is Provider => 'api_key_hint' in p;
