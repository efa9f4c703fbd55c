import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { media, type MediaRow } from '../db/schema.ts';

export class MediaRepository {
  constructor(private readonly db: Db) {}

  insert = async (values: typeof media.$inferInsert): Promise<MediaRow> => (await this.db.insert(media).values(values).returning())[0];
  find = async (id: string): Promise<MediaRow | undefined> => (await this.db.select().from(media).where(eq(media.id, id)))[0];

  /** Bytes a project's media take (files shared by content are counted once). */
  async diskUse(projectId: string): Promise<{ files: number; bytes: number }> {
    const files = this.db.selectDistinctOn([media.sha256], { sha256: media.sha256, size: sql<number>`${media.bytes}`.as('size') }).from(media).where(eq(media.projectId, projectId)).as('files');
    const [row] = await this.db.select({ files: sql<number>`count(*)::int`, bytes: sql<number>`coalesce(sum(${files.size}), 0)::float8` }).from(files);
    return row ?? { files: 0, bytes: 0 };
  }

  ofProject = (projectId: string, kind?: string): Promise<MediaRow[]> =>
    this.db.select().from(media).where(kind ? and(eq(media.projectId, projectId), eq(media.kind, kind)) : eq(media.projectId, projectId));

  /** Deletes rows; answers the sha256s that no row refers to any more (their files may go). */
  async deleteRows(ids: string[]): Promise<{ sha256: string; mime: string }[]> {
    if (!ids.length) return [];
    const removed = await this.db.delete(media).where(inArray(media.id, ids)).returning({ sha256: media.sha256, mime: media.mime });
    const shas = [...new Set(removed.map((r) => r.sha256))];
    const still = new Set((await this.db.selectDistinct({ sha256: media.sha256 }).from(media).where(inArray(media.sha256, shas))).map((r) => r.sha256));
    const orphaned = new Map<string, string>();
    for (const r of removed) if (!still.has(r.sha256)) orphaned.set(r.sha256, r.mime);
    return [...orphaned].map(([sha256, mime]) => ({ sha256, mime }));
  }
}
