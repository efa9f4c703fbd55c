import { ProjectDetail, Run, StageKey } from '@ai-story/contracts';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { currentUser } from '../auth/guard.ts';
import { ProjectParams, ProjectStageParams } from '../projects/routes.ts';
import type { PipelineService } from './service.ts';

const ExecuteBody = z.object({ from_stage: StageKey.optional() }).default({});

export const pipelineRoutes =
  (pipeline: PipelineService): FastifyPluginAsyncZod =>
  async (app) => {
    app.post('/projects/:id/execute', { schema: { params: ProjectParams, body: ExecuteBody.optional(), response: { 202: ProjectDetail } } }, async (req, reply) =>
      reply.code(202).send(await pipeline.execute(currentUser(req), req.params.id, req.body?.from_stage)),
    );
    app.post('/projects/:id/pause', { schema: { params: ProjectParams, response: { 200: ProjectDetail } } }, (req) => pipeline.pause(currentUser(req), req.params.id));
    app.post('/projects/:id/resume', { schema: { params: ProjectParams, response: { 200: ProjectDetail } } }, (req) => pipeline.resume(currentUser(req), req.params.id));
    app.post('/projects/:id/stages/:stage/retry', { schema: { params: ProjectStageParams, response: { 202: Run } } }, async (req, reply) =>
      reply.code(202).send(await pipeline.retry(currentUser(req), req.params.id, req.params.stage)),
    );
    app.post('/projects/:id/stages/:stage/skip', { schema: { params: ProjectStageParams, response: { 200: ProjectDetail } } }, (req) =>
      pipeline.skip(currentUser(req), req.params.id, req.params.stage),
    );
  };
