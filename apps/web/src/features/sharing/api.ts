import type { AddMemberInput, MemberResponse, MemberRole } from '@ai-story/contracts';
import { http } from '@/api/client';

export type Member = MemberResponse;

/** A project's members (the owner is not one of them: the project names its owner). */
export const sharingApi = {
  list: (projectId: string) => http.get<Member[]>(`/projects/${projectId}/members/`),
  add: (projectId: string, body: AddMemberInput) => http.post<Member>(`/projects/${projectId}/members/`, body),
  setRole: (projectId: string, userId: string, role: MemberRole) => http.patch<Member>(`/projects/${projectId}/members/${userId}/`, { role }),
  remove: (projectId: string, userId: string) => http.delete(`/projects/${projectId}/members/${userId}/`),
};
