import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { currentUser } from '../auth/guard.ts';
import { notFound } from '../errors.ts';
import type { ProjectService } from '../projects/service.ts';
import type { MediaStore } from './store.ts';

const MediaParams = z.object({ id: z.uuid() });
const MediaQuery = z.object({ download: z.enum(['0', '1']).optional() });

/** Media files to users with access to the owning project (DESIGN §9): Range, ETag, immutable caching. */
export const mediaRoutes =
  (store: MediaStore, projects: ProjectService): FastifyPluginAsyncZod =>
  async (app) => {
    app.get('/media/:id', { schema: { params: MediaParams, querystring: MediaQuery, hide: true } }, async (req, reply) => {
      const row = await store.find(req.params.id);
      if (!row) throw notFound('Media');
      await projects.access(currentUser(req), row.projectId, 'view');
      // Content never changes under an id (files are named by hash): the browser may keep it for good.
      reply.header('cache-control', 'private, max-age=31536000, immutable');
      reply.header('x-content-type-options', 'nosniff');
      if (req.query.download === '1') reply.header('content-disposition', `attachment; filename="${row.id}.${store.relativePath(row.sha256, row.mime).split('.').pop()}"`);
      return reply.sendFile(store.relativePath(row.sha256, row.mime), store.root, { cacheControl: false, etag: true, lastModified: false });
    });
  };
