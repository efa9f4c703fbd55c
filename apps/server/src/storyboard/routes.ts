import { CreateShotBody, Movement, ReorderShotsBody, Shot, UpdateMovementBody, UpdateShotBody } from '@ai-story/contracts';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { currentUser } from '../auth/guard.ts';
import { ProjectParams } from '../projects/routes.ts';
import type { StoryboardService } from './service.ts';

const IdParams = z.object({ id: z.uuid() });
const ShotList = z.object({ count: z.number(), results: z.array(Shot), total_duration_seconds: z.number() });

export const storyboardRoutes =
  (storyboards: StoryboardService): FastifyPluginAsyncZod =>
  async (app) => {
    app.get('/projects/:id/storyboards', { schema: { params: ProjectParams, response: { 200: ShotList } } }, (req) => storyboards.list(currentUser(req), req.params.id));
    app.post('/projects/:id/storyboards', { schema: { params: ProjectParams, body: CreateShotBody, response: { 201: Shot } } }, async (req, reply) =>
      reply.code(201).send(await storyboards.add(currentUser(req), req.params.id, req.body)),
    );
    app.post('/projects/:id/storyboards/reorder', { schema: { params: ProjectParams, body: ReorderShotsBody, response: { 200: ShotList } } }, (req) =>
      storyboards.reorder(currentUser(req), req.params.id, req.body.ids),
    );
    app.patch('/storyboards/:id', { schema: { params: IdParams, body: UpdateShotBody, response: { 200: Shot } } }, (req) => storyboards.update(currentUser(req), req.params.id, req.body));
    app.delete('/storyboards/:id', { schema: { params: IdParams } }, async (req, reply) => {
      await storyboards.remove(currentUser(req), req.params.id);
      return reply.code(204).send();
    });
    app.get('/projects/:id/camera-movements', { schema: { params: ProjectParams, response: { 200: z.object({ count: z.number(), results: z.array(Movement) }) } } }, (req) =>
      storyboards.movements(currentUser(req), req.params.id),
    );
    app.patch('/camera-movements/:id', { schema: { params: IdParams, body: UpdateMovementBody, response: { 200: Movement } } }, (req) =>
      storyboards.updateMovement(currentUser(req), req.params.id, req.body),
    );
  };
