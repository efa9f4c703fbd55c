import { AddMemberBody, CreateProjectBody, Member, MemberAdded, PageQuery, Project, ProjectDetail, ProjectStage, StageKey, UpdateMemberBody, UpdateProjectBody, paginated } from '@ai-story/contracts';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { currentUser } from '../auth/guard.ts';
import type { ProjectService } from './service.ts';

export const ProjectParams = z.object({ id: z.uuid() });
export const ProjectStageParams = z.object({ id: z.uuid(), stage: StageKey });
const MemberParams = z.object({ id: z.uuid(), user_id: z.uuid() });

export const projectRoutes =
  (projects: ProjectService): FastifyPluginAsyncZod =>
  async (app) => {
    app.get('/projects', { schema: { querystring: PageQuery, response: { 200: paginated(Project) } } }, (req) =>
      projects.list(currentUser(req), req.query.page, req.query.page_size, req.query.search),
    );
    app.post('/projects', { schema: { body: CreateProjectBody, response: { 201: ProjectDetail } } }, async (req, reply) =>
      reply.code(201).send(await projects.create(currentUser(req), req.body)),
    );
    app.get('/projects/:id', { schema: { params: ProjectParams, response: { 200: ProjectDetail } } }, (req) =>
      projects.get(currentUser(req), req.params.id),
    );
    app.patch('/projects/:id', { schema: { params: ProjectParams, body: UpdateProjectBody, response: { 200: ProjectDetail } } }, (req) =>
      projects.update(currentUser(req), req.params.id, req.body),
    );
    app.delete('/projects/:id', { schema: { params: ProjectParams } }, async (req, reply) => {
      await projects.remove(currentUser(req), req.params.id);
      return reply.code(204).send();
    });
    app.get('/projects/:id/stages', { schema: { params: ProjectParams, response: { 200: z.array(ProjectStage) } } }, (req) =>
      projects.stages(currentUser(req), req.params.id),
    );

    app.get('/projects/:id/members', { schema: { params: ProjectParams, response: { 200: z.array(Member) } } }, (req) =>
      projects.members(currentUser(req), req.params.id),
    );
    // By id: 201 and the member. By email: 202 and the same answer for any address (see addMemberByEmail).
    app.post('/projects/:id/members', { schema: { params: ProjectParams, body: AddMemberBody, response: { 201: Member, 202: MemberAdded } } }, async (req, reply) => {
      const { user_id, email, role } = req.body;
      if (user_id) return reply.code(201).send(await projects.addMember(currentUser(req), req.params.id, user_id, role));
      return reply.code(202).send(await projects.addMemberByEmail(currentUser(req), req.params.id, email!, role));
    });
    app.patch('/projects/:id/members/:user_id', { schema: { params: MemberParams, body: UpdateMemberBody, response: { 200: Member } } }, (req) =>
      projects.updateMember(currentUser(req), req.params.id, req.params.user_id, req.body.role),
    );
    app.delete('/projects/:id/members/:user_id', { schema: { params: MemberParams } }, async (req, reply) => {
      await projects.removeMember(currentUser(req), req.params.id, req.params.user_id);
      return reply.code(204).send();
    });
  };
