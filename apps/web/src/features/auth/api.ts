import type {
  ApiToken,
  ChangePasswordInput,
  CreatedTokenResponse,
  CreateTokenInput,
  LoginInput,
  RegisterInput,
  SetupInput,
  SetupStatusResponse,
  User,
} from '@ai-story/contracts';
import { http } from '@/api/client';

export const authApi = {
  setupStatus: () => http.get<SetupStatusResponse>('/auth/setup'),
  setup: (body: SetupInput) => http.post<User>('/auth/setup', body),
  login: (body: LoginInput) => http.post<User>('/auth/login', body),
  register: (body: RegisterInput) => http.post<User>('/auth/register', body),
  logout: () => http.post<void>('/auth/logout'),
  me: () => http.get<User>('/auth/me'),
  changePassword: (body: ChangePasswordInput) => http.post<void>('/auth/password', body),
  listTokens: () => http.get<ApiToken[]>('/auth/tokens'),
  createToken: (body: CreateTokenInput) => http.post<CreatedTokenResponse>('/auth/tokens', body),
  revokeToken: (id: string) => http.delete(`/auth/tokens/${id}/`),
};
