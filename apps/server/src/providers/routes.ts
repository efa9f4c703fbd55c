import { CreateProviderBody, ModelConfig, Provider, ProviderSummary, ProviderTestResult, ProviderUsage, UpdateProviderBody } from '@ai-story/contracts';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { currentUser } from '../auth/guard.ts';
import type { ProjectService } from '../projects/service.ts';
import type { ProviderService } from './service.ts';

const IdParams = z.object({ id: z.uuid() });

export const providerRoutes =
  (providers: ProviderService, projects: ProjectService): FastifyPluginAsyncZod =>
  async (app) => {
    app.get('/models/providers', { schema: { response: { 200: z.array(Provider.or(ProviderSummary)) } } }, (req) => providers.list(currentUser(req)));
    app.post('/models/providers', { schema: { body: CreateProviderBody, response: { 201: Provider } } }, async (req, reply) =>
      reply.code(201).send(await providers.create(currentUser(req), req.body)),
    );
    app.get('/models/providers/:id', { schema: { params: IdParams, response: { 200: Provider.or(ProviderSummary) } } }, (req) =>
      providers.get(currentUser(req), req.params.id),
    );
    app.patch('/models/providers/:id', { schema: { params: IdParams, body: UpdateProviderBody, response: { 200: Provider } } }, (req) =>
      providers.update(currentUser(req), req.params.id, req.body),
    );
    app.delete('/models/providers/:id', { schema: { params: IdParams } }, async (req, reply) => {
      await providers.remove(currentUser(req), req.params.id);
      return reply.code(204).send();
    });
    app.post('/models/providers/:id/test', { schema: { params: IdParams, response: { 200: ProviderTestResult } } }, (req) =>
      providers.test(currentUser(req), req.params.id),
    );
    app.get('/models/providers/:id/usage', { schema: { params: IdParams, querystring: z.object({ days: z.coerce.number().int().min(1).max(365).default(30) }), response: { 200: ProviderUsage } } }, (req) =>
      providers.usage(currentUser(req), req.params.id, req.query.days),
    );

    app.get('/models/routing', { schema: { response: { 200: ModelConfig } } }, () => providers.globalRouting());
    app.put('/models/routing', { schema: { body: ModelConfig, response: { 200: ModelConfig } } }, (req) =>
      providers.setGlobalRouting(currentUser(req), req.body),
    );

    app.get('/projects/:id/model-config', { schema: { params: IdParams, response: { 200: ModelConfig } } }, async (req) =>
      (await projects.access(currentUser(req), req.params.id, 'view')).project.modelConfig as ModelConfig,
    );
    app.put('/projects/:id/model-config', { schema: { params: IdParams, body: ModelConfig, response: { 200: ModelConfig } } }, async (req) => {
      await projects.allows(currentUser(req), req.params.id, 'edit');
      await providers.assertKnown(req.body);
      await projects.setModelConfig(req.params.id, req.body);
      return req.body;
    });
  };
