import {
  CreatePromptSetBody,
  PageQuery,
  ProjectPromptSet,
  PromptSet,
  PromptSetDetail,
  PromptSetQuery,
  PromptTemplate,
  PromptTemplateQuery,
  PromptTemplateVersion,
  SetProjectPromptSetBody,
  TestTemplateBody,
  TestTemplateResult,
  UpdatePromptSetBody,
  UpdateTemplateBody,
  paginated,
} from '@ai-story/contracts';
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { currentUser } from '../auth/guard.ts';
import type { PromptService } from './service.ts';

const IdParams = z.object({ id: z.uuid() });
const VersionParams = z.object({ id: z.uuid(), version: z.coerce.number().int().min(1).max(2_147_483_647) });
const VersionsQuery = PageQuery.omit({ search: true });

export const promptRoutes =
  (prompts: PromptService, opts: { testRateLimit: number }): FastifyPluginAsyncZod =>
  async (app) => {
    // Each test is a render a user chooses freely (run starts are bounded by one active run per
    // stage): counted per user, after the guard has said who the user is.
    const testRateLimited = {
      rateLimit: { max: opts.testRateLimit, timeWindow: '1 minute', hook: 'preHandler' as const, keyGenerator: (req: FastifyRequest) => currentUser(req).id },
    };
    app.get('/prompts/sets', { schema: { querystring: PromptSetQuery, response: { 200: paginated(PromptSet) } } }, (req) =>
      prompts.listSets(currentUser(req), req.query.page, req.query.page_size, req.query.search),
    );
    app.post('/prompts/sets', { schema: { body: CreatePromptSetBody, response: { 201: PromptSetDetail } } }, async (req, reply) =>
      reply.code(201).send(await prompts.createSet(currentUser(req), req.body)),
    );
    app.get('/prompts/sets/:id', { schema: { params: IdParams, response: { 200: PromptSetDetail } } }, (req) =>
      prompts.getSet(currentUser(req), req.params.id),
    );
    app.patch('/prompts/sets/:id', { schema: { params: IdParams, body: UpdatePromptSetBody, response: { 200: PromptSetDetail } } }, (req) =>
      prompts.updateSet(currentUser(req), req.params.id, req.body),
    );
    app.delete('/prompts/sets/:id', { schema: { params: IdParams } }, async (req, reply) => {
      await prompts.removeSet(currentUser(req), req.params.id);
      return reply.code(204).send();
    });

    app.get('/prompts/templates', { schema: { querystring: PromptTemplateQuery, response: { 200: paginated(PromptTemplate) } } }, (req) =>
      prompts.listTemplates(currentUser(req), req.query),
    );
    app.get('/prompts/templates/:id', { schema: { params: IdParams, response: { 200: PromptTemplate } } }, (req) =>
      prompts.getTemplate(currentUser(req), req.params.id),
    );
    app.patch('/prompts/templates/:id', { schema: { params: IdParams, body: UpdateTemplateBody, response: { 200: PromptTemplate } } }, (req) =>
      prompts.saveTemplate(currentUser(req), req.params.id, req.body.content),
    );
    app.get(
      '/prompts/templates/:id/versions',
      { schema: { params: IdParams, querystring: VersionsQuery, response: { 200: paginated(PromptTemplateVersion) } } },
      (req) => prompts.versions(currentUser(req), req.params.id, req.query.page, req.query.page_size),
    );
    app.get('/prompts/templates/:id/versions/:version', { schema: { params: VersionParams, response: { 200: PromptTemplateVersion } } }, (req) =>
      prompts.version(currentUser(req), req.params.id, req.params.version),
    );
    app.post('/prompts/templates/:id/versions/:version/restore', { schema: { params: VersionParams, response: { 200: PromptTemplate } } }, (req) =>
      prompts.restore(currentUser(req), req.params.id, req.params.version),
    );
    app.post('/prompts/templates/:id/test', { config: testRateLimited, schema: { params: IdParams, body: TestTemplateBody, response: { 200: TestTemplateResult } } }, (req) =>
      prompts.test(currentUser(req), req.params.id, req.body),
    );

    app.get('/projects/:id/prompt-set', { schema: { params: IdParams, response: { 200: ProjectPromptSet } } }, (req) =>
      prompts.projectPromptSet(currentUser(req), req.params.id),
    );
    app.put('/projects/:id/prompt-set', { schema: { params: IdParams, body: SetProjectPromptSetBody, response: { 200: ProjectPromptSet } } }, (req) =>
      prompts.setProjectPromptSet(currentUser(req), req.params.id, req.body.prompt_set_id),
    );
  };
