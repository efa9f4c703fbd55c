import { EditSentenceBody, Run, Subtitles, UpdateSubtitlesBody, VoiceList, VoiceSampleBody } from '@ai-story/contracts';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { currentUser } from '../auth/guard.ts';
import { ProjectParams } from '../projects/routes.ts';
import type { NarrationService } from './service.ts';

const SentenceParams = z.object({ id: z.uuid(), shot_id: z.uuid(), index: z.coerce.number().int().min(0).max(10_000) });

/** RFC 6266: an ASCII fallback name plus the UTF-8 one (project names are often Chinese). */
const attachment = (filename: string) =>
  `attachment; filename="${filename.replace(/[^\x20-\x7e]|["\\]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(filename)}`;

export const narrationRoutes =
  (narration: NarrationService): FastifyPluginAsyncZod =>
  async (app) => {
    app.get('/projects/:id/narration/voices', { schema: { params: ProjectParams, response: { 200: VoiceList } } }, (req) =>
      narration.voices(currentUser(req), req.params.id),
    );
    app.post('/projects/:id/narration/voice-sample', { schema: { params: ProjectParams, body: VoiceSampleBody } }, async (req, reply) => {
      const abort = new AbortController();
      // The client went away before the answer: stop synthesising.
      reply.raw.on('close', () => reply.raw.writableFinished || abort.abort());
      const { audio, mime } = await narration.sample(currentUser(req), req.params.id, req.body, abort.signal);
      return reply.header('cache-control', 'no-store').type(mime).send(audio);
    });
    app.patch('/projects/:id/narration/:shot_id/sentences/:index', { schema: { params: SentenceParams, body: EditSentenceBody, response: { 202: Run } } }, async (req, reply) =>
      reply.code(202).send(await narration.editSentence(currentUser(req), req.params.id, req.params.shot_id, req.params.index, req.body.text)),
    );
    app.get('/projects/:id/subtitles', { schema: { params: ProjectParams, response: { 200: Subtitles } } }, (req) => narration.subtitles(currentUser(req), req.params.id));
    app.put('/projects/:id/subtitles', { schema: { params: ProjectParams, body: UpdateSubtitlesBody, response: { 200: Subtitles } } }, (req) =>
      narration.updateSubtitles(currentUser(req), req.params.id, req.body.lines),
    );
    for (const format of ['srt', 'ass'] as const) {
      app.get(`/projects/:id/subtitles.${format}`, { schema: { params: ProjectParams } }, async (req, reply) => {
        const file = await narration.subtitleFile(currentUser(req), req.params.id, format);
        return reply
          .header('content-disposition', attachment(file.filename))
          .header('cache-control', 'no-store')
          .type(format === 'srt' ? 'application/x-subrip; charset=utf-8' : 'text/x-ssa; charset=utf-8')
          .send(file.body);
      });
    }
  };
