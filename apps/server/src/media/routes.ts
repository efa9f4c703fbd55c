import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { currentUser } from '../auth/guard.ts';
import { notFound } from '../errors.ts';
import type { ProjectService } from '../projects/service.ts';
import type { MediaStore } from './store.ts';

const MediaParams = z.object({ id: z.uuid() });
// `name`: the file name a download is saved under (the extension stays the stored file's own).
const MediaQuery = z.object({ download: z.enum(['0', '1']).optional(), name: z.string().max(120).optional() });

/** A Content-Disposition for a user-chosen name: an ASCII fallback and the UTF-8 name (RFC 6266 / 5987). */
function attachment(name: string, ext: string): string {
  const base = name.replace(/\.[A-Za-z0-9]{1,5}$/, '').replace(/[\u0000-\u001f\u007f"\\/:*?<>|]/g, '_').trim() || 'download';
  const full = `${base}.${ext}`;
  const ascii = full.replace(/[^\x20-\x7e]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(full)}`;
}

/** Media files to users with access to the owning project (DESIGN §9): Range, ETag, immutable caching. */
export const mediaRoutes =
  (store: MediaStore, projects: ProjectService): FastifyPluginAsyncZod =>
  async (app) => {
    app.get('/media/:id', { schema: { params: MediaParams, querystring: MediaQuery, hide: true } }, async (req, reply) => {
      const row = await store.find(req.params.id);
      if (!row) throw notFound('Media');
      await projects.allows(currentUser(req), row.projectId, 'view');
      // Content never changes under an id (files are named by hash): the browser may keep it for good.
      reply.header('cache-control', 'private, max-age=31536000, immutable');
      reply.header('x-content-type-options', 'nosniff');
      const ext = store.relativePath(row.sha256, row.mime).split('.').pop()!;
      if (req.query.download === '1') reply.header('content-disposition', attachment(req.query.name ?? row.id, ext));
      // The type is the one found in the bytes when stored (an extension lookup does not know .ass, say).
      reply.header('content-type', row.mime);
      return reply.sendFile(store.relativePath(row.sha256, row.mime), store.root, { cacheControl: false, contentType: false, etag: true, lastModified: false });
    });
  };
