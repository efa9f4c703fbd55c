import { EditStageOutputBody, PageQuery, Run, STAGE_KEYS, StartRunBody, paginated } from '@ai-story/contracts';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { currentUser } from '../auth/guard.ts';
import { ProjectParams, ProjectStageParams } from '../projects/routes.ts';
import type { StageSettingsService } from '../stages/settings.ts';
import type { RunService } from './service.ts';
import type { RunStreams } from './streams.ts';

const RunParams = z.object({ run_id: z.uuid() });
const ResumeQuery = z.object({
  last_event_id: z.string().max(20).optional(),
  /** `seed`: every token event also carries `full_text`, the text so far (the seed's client reads it). */
  compat: z.enum(['seed']).optional(),
});
const ProjectStreamQuery = ResumeQuery.extend({
  /** `0`: leave out token and progress events (a page that follows the run's own stream for them). */
  tokens: z.enum(['0', '1']).optional(),
});
const SSE_RESPONSE = { 200: z.string().describe('text/event-stream: id + data lines, one JSON event each (see RunEvent)') };

export const runRoutes =
  (runs: RunService, streams: RunStreams, settings: StageSettingsService): FastifyPluginAsyncZod =>
  async (app) => {
    app.post('/projects/:id/stages/:stage/runs', { schema: { params: ProjectStageParams, body: StartRunBody, response: { 202: Run } } }, async (req, reply) =>
      reply.code(202).send(await runs.start(currentUser(req), req.params.id, req.params.stage, req.body)),
    );
    app.get('/projects/:id/stages/:stage/runs', { schema: { params: ProjectStageParams, querystring: PageQuery, response: { 200: paginated(Run) } } }, (req) =>
      runs.history(currentUser(req), req.params.id, req.params.stage, req.query.page, req.query.page_size),
    );
    app.patch('/projects/:id/stages/:stage', { schema: { params: ProjectStageParams, body: EditStageOutputBody, response: { 200: Run } } }, (req) =>
      runs.editOutput(currentUser(req), req.params.id, req.params.stage, req.body.output),
    );
    app.get('/projects/:id/stages/:stage/settings', { schema: { params: ProjectStageParams, response: { 200: z.record(z.string(), z.unknown()) } } }, (req) =>
      settings.get(currentUser(req), req.params.id, req.params.stage),
    );
    app.patch('/projects/:id/stages/:stage/settings', { schema: { params: ProjectStageParams, body: z.record(z.string(), z.unknown()), response: { 200: z.record(z.string(), z.unknown()) } } }, (req) =>
      settings.update(currentUser(req), req.params.id, req.params.stage, req.body),
    );
    app.get('/runs/:run_id', { schema: { params: RunParams, response: { 200: Run } } }, (req) => runs.get(currentUser(req), req.params.run_id));
    app.post('/runs/:run_id/cancel', { schema: { params: RunParams, response: { 200: Run } } }, (req) => runs.cancel(currentUser(req), req.params.run_id));
    app.post('/runs/:run_id/restore', { schema: { params: RunParams, response: { 200: Run } } }, (req) => runs.restore(currentUser(req), req.params.run_id));

    app.get('/runs/:run_id/events', { schema: { params: RunParams, querystring: ResumeQuery, response: SSE_RESPONSE } }, (req, reply) =>
      streams.followRun(currentUser(req), req.params.run_id, req, reply),
    );
    app.get('/projects/:id/events', { schema: { params: ProjectParams, querystring: ProjectStreamQuery, response: SSE_RESPONSE } }, (req, reply) =>
      streams.followProject(currentUser(req), req.params.id, req, reply, { tokens: req.query.tokens !== '0' }),
    );

    // The seed's endpoints: start and stream in one response, the body being the stage input itself;
    // the first event carries the run id, so a client that drops it reattaches with GET /runs/{id}/events.
    for (const stage of STAGE_KEYS) {
      app.post(`/projects/:id/${stage}-stream`, { schema: { params: ProjectParams, querystring: ResumeQuery.pick({ compat: true }), body: z.record(z.string(), z.unknown()), response: SSE_RESPONSE } }, async (req, reply) => {
        const { provider_id, ...input } = req.body as { provider_id?: unknown };
        return streams.startAndFollow(currentUser(req), req.params.id, stage, { input, provider_id: typeof provider_id === 'string' ? provider_id : undefined }, req, reply);
      });
    }
  };
