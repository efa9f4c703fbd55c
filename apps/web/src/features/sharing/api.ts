import type { MemberAddedResponse, MemberResponse, MemberRole } from '@ai-story/contracts';
import { http } from '@/api/client';

export type Member = MemberResponse;

/** A project's members (the owner is not one of them: the project names its owner). */
export const sharingApi = {
  list: (projectId: string) => http.get<Member[]>(`/projects/${projectId}/members/`),
  /** The same answer whether or not the email has an account: the list, reloaded, shows who was added. */
  addByEmail: (projectId: string, email: string, role: MemberRole) => http.post<MemberAddedResponse>(`/projects/${projectId}/members/`, { email, role }),
  setRole: (projectId: string, userId: string, role: MemberRole) => http.patch<Member>(`/projects/${projectId}/members/${userId}/`, { role }),
  remove: (projectId: string, userId: string) => http.delete(`/projects/${projectId}/members/${userId}/`),
};
