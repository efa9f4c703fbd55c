import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { media, type MediaRow } from '../db/schema.ts';

export class MediaRepository {
  constructor(private readonly db: Db) {}

  insert = async (values: typeof media.$inferInsert): Promise<MediaRow> => (await this.db.insert(media).values(values).returning())[0];
  find = async (id: string): Promise<MediaRow | undefined> => (await this.db.select().from(media).where(eq(media.id, id)))[0];

  /** Bytes a project's media take (files shared by content are counted once). */
  async diskUse(projectId: string): Promise<{ files: number; bytes: number }> {
    const [row] = await this.db
      .select({ files: sql<number>`count(distinct ${media.sha256})::int`, bytes: sql<number>`coalesce(sum(distinct_bytes), 0)::float8` })
      .from(
        this.db
          .selectDistinctOn([media.sha256], { sha256: media.sha256, distinct_bytes: media.bytes })
          .from(media)
          .where(eq(media.projectId, projectId))
          .as('m'),
      );
    return row ?? { files: 0, bytes: 0 };
  }
}
