import { CharacterList, CharacterPicture, CharacterSuggestion, ImageEstimate, ImageItem, ImageOutput, MAX_IMAGE_BYTES, MAX_IMAGE_CANDIDATES, MediaCleanup, MediaUsage } from '@ai-story/contracts';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { currentUser } from '../auth/guard.ts';
import { AppError } from '../errors.ts';
import type { ImageService } from './service.ts';

const ProjectParams = z.object({ id: z.uuid() });
const ImageParams = z.object({ id: z.uuid(), imageId: z.uuid() });
const ShotParams = z.object({ id: z.uuid(), shotId: z.uuid() });
const EstimateQuery = z.object({
  provider_id: z.uuid().optional(),
  shots: z.coerce.number().int().min(0).max(10_000).optional(),
  candidates: z.coerce.number().int().min(1).max(MAX_IMAGE_CANDIDATES).optional(),
});

/** An upload's body is the file itself. */
function rawImage(body: unknown): Buffer {
  if (Buffer.isBuffer(body)) return body;
  throw new AppError(400, 'validation_error', 'Send the image file itself as the body (Content-Type: image/png, image/jpeg, image/webp or application/octet-stream)', { fields: { file: 'Missing' } });
}

/** The 文生图 stage's own endpoints (its runs go through the shared run routes). */
export const imageRoutes =
  (images: ImageService): FastifyPluginAsyncZod =>
  async (app) => {
    // Uploads arrive as the raw file (Content-Type: image/* or application/octet-stream), so no multipart
    // parser is needed. A larger body is cut off while it arrives (413 payload_too_large), never buffered whole.
    const raw = (_req: unknown, body: string | Buffer, done: (err: null, body: Buffer) => void) => done(null, Buffer.from(body));
    app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: MAX_IMAGE_BYTES }, raw);
    app.addContentTypeParser(/^image\//, { parseAs: 'buffer', bodyLimit: MAX_IMAGE_BYTES }, raw);

    app.get('/projects/:id/stages/image/estimate', { schema: { params: ProjectParams, querystring: EstimateQuery, response: { 200: ImageEstimate } } }, (req) =>
      images.estimate(currentUser(req), req.params.id, req.query),
    );
    app.post('/projects/:id/images/:imageId/choose', { schema: { params: ImageParams, response: { 200: ImageOutput } } }, (req) =>
      images.choose(currentUser(req), req.params.id, req.params.imageId),
    );
    app.post('/projects/:id/storyboards/:shotId/images', { schema: { params: ShotParams, response: { 201: ImageItem } } }, async (req, reply) => {
      return reply.code(201).send(await images.upload(currentUser(req), req.params.id, req.params.shotId, rawImage(req.body)));
    });
    app.get('/projects/:id/characters', { schema: { params: ProjectParams, response: { 200: CharacterList } } }, (req) => images.characters(currentUser(req), req.params.id));
    app.put('/projects/:id/characters', { schema: { params: ProjectParams, body: CharacterList, response: { 200: CharacterList } } }, (req) =>
      images.setCharacters(currentUser(req), req.params.id, req.body.characters),
    );
    app.post('/projects/:id/characters/pictures', { schema: { params: ProjectParams, response: { 201: CharacterPicture } } }, async (req, reply) => {
      return reply.code(201).send(await images.uploadCharacterPicture(currentUser(req), req.params.id, rawImage(req.body)));
    });
    app.post('/projects/:id/characters/suggest', { schema: { params: ProjectParams, response: { 200: CharacterSuggestion } } }, (req) =>
      images.suggestCharacters(currentUser(req), req.params.id),
    );
    app.get('/projects/:id/media/usage', { schema: { params: ProjectParams, response: { 200: MediaUsage } } }, (req) => images.usage(currentUser(req), req.params.id));
    app.post('/projects/:id/media/clean-up', { schema: { params: ProjectParams, response: { 200: MediaCleanup } } }, (req) => images.cleanUp(currentUser(req), req.params.id));
  };
