import { ExportSettings, type ExportPreview } from '@ai-story/contracts';
import { fileTypeFromBuffer } from 'file-type';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { currentUser } from '../auth/guard.ts';
import { AppError } from '../errors.ts';
import type { MediaStore } from '../media/store.ts';
import type { ProjectRepository } from '../projects/repository.ts';
import type { ProjectService } from '../projects/service.ts';
import { settingsOf } from '../stages/definition.ts';
import type { StoryboardRepository } from '../storyboard/repository.ts';
import { frameOf, placeLines, planExport, timelineOf } from './plan.ts';

const Params = z.object({ id: z.uuid() });
/** Background music: a song-length file, well under what a phone records in a few minutes. */
export const MAX_MUSIC_BYTES = 20 * 1024 * 1024;
const AUDIO_TYPES = /^(audio\/|video\/mp4$|application\/ogg$)/;

/**
 * The export's own endpoints: the preview's timeline (what the export would render, before any
 * export exists) and the background-music upload.
 */
export const exportRoutes =
  (d: { projects: ProjectService; projectRepo: ProjectRepository; storyboards: StoryboardRepository; media: MediaStore }): FastifyPluginAsyncZod =>
  async (app) => {
    app.get('/projects/:id/export/preview/', { schema: { params: Params, tags: ['export'] } }, async (req): Promise<ExportPreview> => {
      const { project } = await d.projects.access(currentUser(req), req.params.id, 'view');
      const ctx = { project, stages: await d.projectRepo.stages(project.id), shots: await d.storyboards.shots(project.id) };
      const settings = settingsOf(ExportSettings, project, 'export');
      const { width, height, fps } = frameOf(ctx);
      const plan = planExport(ctx, settings).filter((p) => p.picture);
      const line = plan.length ? timelineOf(plan, settings, fps) : { starts_s: [], transition_s: 0, total_s: 0 };
      const url = (id: string | null | undefined) => (id ? d.media.urlOf(id) : null);
      return {
        width,
        height,
        fps,
        total_s: line.total_s,
        transition: { kind: settings.transition, duration_s: line.transition_s },
        shots: plan.map((p, i) => ({
          shot_id: p.shot.id,
          sequence_number: p.shot.sequenceNumber,
          start_s: line.starts_s[i],
          duration_s: p.duration_s,
          clip_url: p.picture!.kind === 'clip' ? url(p.picture!.media_id) : null,
          image_url: p.picture!.kind === 'image' ? url(p.picture!.media_id) : null,
          movement: p.movement,
          narration_url: url(p.narration?.media_id),
        })),
        lines: settings.subtitle_mode === 'none' ? [] : placeLines(plan, line.starts_s, settings.subtitle_edits),
        music_url: url(settings.music_media_id),
        label: settings.label_visible ? settings.label_text : null,
      };
    });

    // Raw audio bytes as the body; the type is taken from the bytes, never from the header.
    // A refused upload closes its connection: the client may still be sending megabytes nobody reads.
    app.addHook('onSend', async (_req, reply) => {
      if (reply.statusCode === 413) reply.header('connection', 'close');
    });
    app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_MUSIC_BYTES }, (_req, body, done) => done(null, body));
    app.post('/projects/:id/stages/export/music/', { schema: { params: Params, tags: ['export'] }, bodyLimit: MAX_MUSIC_BYTES }, async (req, reply) => {
      const { project } = await d.projects.access(currentUser(req), req.params.id, 'edit');
      const bytes = req.body;
      if (!Buffer.isBuffer(bytes) || bytes.length === 0) throw new AppError(400, 'validation_error', 'body: send the audio file as the request body', { fields: { body: 'empty' } });
      const type = await fileTypeFromBuffer(bytes);
      if (!type || !AUDIO_TYPES.test(type.mime)) {
        throw new AppError(400, 'validation_error', `body: not an audio file (${type?.mime ?? 'unknown type'}); use MP3, M4A, WAV, OGG or FLAC`, { fields: { body: 'not audio' } });
      }
      const row = await d.media.put(project.id, bytes, { kind: 'audio', source: 'upload', createdBy: currentUser(req).id });
      return reply.code(201).send({ media_id: row.id, url: d.media.urlOf(row.id), mime: row.mime, size_bytes: row.bytes });
    });
  };
