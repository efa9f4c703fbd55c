import { randomUUID } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../src/auth/password.ts';
import { projectStages } from '../src/db/schema.ts';
import { Client, createTestDatabase, startStudio, type TestStudio } from './helpers.ts';

const OWNER = { id: randomUUID(), email: 'older@example.com', password: 'an older studio user' };
const PROJECT = randomUUID();
/** The stages a project had before the media stages' migration: no narration yet. */
const OLD_STAGES = ['rewrite', 'storyboard', 'camera', 'image', 'video', 'export'];

describe(`a database made before the media stages (${process.env.TEST_DB ?? 'pglite'})`, () => {
  let studio: TestStudio;
  let owner: Client;

  beforeAll(async () => {
    const hash = await hashPassword(OWNER.password);
    const testDb = await createTestDatabase({
      upTo: '0000_init',
      async seed({ db }) {
        await db.execute(sql`insert into users (id, email, name, password_hash, role) values (${OWNER.id}, ${OWNER.email}, 'Older', ${hash}, 'admin')`);
        await db.execute(sql`insert into projects (id, owner_id, name, original_topic, status) values (${PROJECT}, ${OWNER.id}, '旧项目', '雨夜的钟表店', 'processing')`);
        for (const [position, stage] of OLD_STAGES.entries()) {
          const done = stage === 'rewrite';
          await db.execute(sql`insert into project_stages (project_id, stage_type, position, status, output)
            values (${PROJECT}, ${stage}, ${position}, ${done ? 'completed' : 'pending'}, ${done ? JSON.stringify({ original_text: '雨夜的钟表店', rewritten_text: '雨夜，老人在钟表店里等一个人。' }) : null}::jsonb)`);
        }
      },
    });
    studio = await startStudio({}, testDb);
    owner = new Client(studio.url);
    expect((await owner.post('/api/v1/auth/login', { email: OWNER.email, password: OWNER.password })).status).toBe(200);
  });
  afterAll(async () => {
    await studio?.close();
  });

  it('gains the narration stage, pending, between image and video; the stages it had keep their state', async () => {
    const res = await owner.get(`/api/v1/projects/${PROJECT}/stages/`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const stages = res.body as { stage_type: string; status: string; output: unknown }[];
    expect(stages.map((s) => s.stage_type)).toEqual(['rewrite', 'storyboard', 'camera', 'image', 'narration', 'video', 'export']);
    expect(stages.find((s) => s.stage_type === 'narration')).toMatchObject({ status: 'pending', output: null });
    expect(stages[0]).toMatchObject({ status: 'completed', output: { rewritten_text: '雨夜，老人在钟表店里等一个人。' } });
    // Exactly one narration row, at position 4, with video and export moved down one.
    const list = await studio.database.db
      .select({ stage_type: projectStages.stageType, position: projectStages.position })
      .from(projectStages)
      .where(eq(projectStages.projectId, PROJECT))
      .orderBy(projectStages.position);
    expect(list.map((r) => [r.stage_type, r.position])).toEqual([
      ['rewrite', 0],
      ['storyboard', 1],
      ['camera', 2],
      ['image', 3],
      ['narration', 4],
      ['video', 5],
      ['export', 6],
    ]);
  });
});
