import { startFakeLlm } from '@ai-story/fake-llm';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoryboardRepository } from '../src/storyboard/repository.ts';
import { ADMIN, Client, concretePath, createUser, setupAdmin, startStudio, type TestStudio } from './helpers.ts';

/**
 * Issue 15: who may call what, for every route of the API. The rows come from the route table the
 * app registers, so a new route that is missing here fails the suite until someone decides who may
 * call it. Columns: anonymous, a stranger (signed in, no access to the project), the project's
 * viewer, editor and owner, and an admin who is not a member. Project-scoped resources answer 404
 * to whoever has no access (a stranger must not learn that an id exists), 403 to a member without
 * enough rights.
 */
const ROLES = ['anonymous', 'stranger', 'viewer', 'editor', 'owner', 'admin'] as const;
type Role = (typeof ROLES)[number];
type Row = readonly [anonymous: number, stranger: number, viewer: number, editor: number, owner: number, admin: number];

// prettier-ignore
const MATRIX: Record<string, Row> = {
  'GET /api/v1/auth/setup': [200, 200, 200, 200, 200, 200],
  'POST /api/v1/auth/setup': [409, 409, 409, 409, 409, 409],
  'POST /api/v1/auth/login': [401, 401, 401, 401, 401, 401],
  'POST /api/v1/auth/register': [403, 403, 403, 403, 403, 403],
  'POST /api/v1/auth/logout': [204, 204, 204, 204, 204, 204],
  'GET /api/v1/auth/me': [401, 200, 200, 200, 200, 200],
  'POST /api/v1/auth/password': [401, 400, 400, 400, 400, 400],
  'GET /api/v1/auth/tokens': [401, 200, 200, 200, 200, 200],
  'POST /api/v1/auth/tokens': [401, 201, 201, 201, 201, 201],
  'DELETE /api/v1/auth/tokens/:id': [401, 404, 404, 404, 204, 404],
  'GET /api/v1/users': [401, 403, 403, 403, 403, 200],
  'POST /api/v1/users': [401, 403, 403, 403, 403, 201],
  'PATCH /api/v1/users/:id': [401, 403, 403, 403, 403, 200],
  'DELETE /api/v1/users/:id': [401, 403, 403, 403, 403, 204],
  'GET /api/v1/users/:id/tokens': [401, 403, 403, 403, 403, 200],
  'DELETE /api/v1/users/:id/tokens/:token_id': [401, 403, 403, 403, 403, 204],
  'GET /api/v1/settings': [401, 403, 403, 403, 403, 200],
  'PATCH /api/v1/settings': [401, 403, 403, 403, 403, 200],
  'GET /api/v1/projects': [401, 200, 200, 200, 200, 200],
  'POST /api/v1/projects': [401, 201, 201, 201, 201, 201],
  'GET /api/v1/projects/:id': [401, 404, 200, 200, 200, 404],
  'PATCH /api/v1/projects/:id': [401, 404, 403, 200, 200, 404],
  'DELETE /api/v1/projects/:id': [401, 404, 403, 403, 204, 404],
  'GET /api/v1/projects/:id/stages': [401, 404, 200, 200, 200, 404],
  'GET /api/v1/projects/:id/members': [401, 404, 200, 200, 200, 404],
  'POST /api/v1/projects/:id/members': [401, 404, 403, 403, 202, 404],
  'PATCH /api/v1/projects/:id/members/:user_id': [401, 404, 403, 403, 200, 404],
  'DELETE /api/v1/projects/:id/members/:user_id': [401, 404, 403, 403, 204, 404],
  'GET /api/v1/models/providers': [401, 200, 200, 200, 200, 200],
  'POST /api/v1/models/providers': [401, 403, 403, 403, 403, 201],
  'GET /api/v1/models/providers/:id': [401, 200, 200, 200, 200, 200],
  'PATCH /api/v1/models/providers/:id': [401, 403, 403, 403, 403, 200],
  'DELETE /api/v1/models/providers/:id': [401, 403, 403, 403, 403, 204],
  'POST /api/v1/models/providers/:id/test': [401, 403, 403, 403, 403, 200],
  'GET /api/v1/models/providers/:id/usage': [401, 403, 403, 403, 403, 200],
  'GET /api/v1/models/routing': [401, 200, 200, 200, 200, 200],
  'PUT /api/v1/models/routing': [401, 403, 403, 403, 403, 200],
  'GET /api/v1/projects/:id/model-config': [401, 404, 200, 200, 200, 404],
  'PUT /api/v1/projects/:id/model-config': [401, 404, 403, 200, 200, 404],
  'GET /api/v1/prompts/sets': [401, 200, 200, 200, 200, 200],
  'POST /api/v1/prompts/sets': [401, 201, 201, 201, 201, 201],
  'GET /api/v1/prompts/sets/:id': [401, 404, 404, 404, 200, 404],
  'PATCH /api/v1/prompts/sets/:id': [401, 404, 404, 404, 200, 404],
  'DELETE /api/v1/prompts/sets/:id': [401, 404, 404, 404, 204, 404],
  'GET /api/v1/prompts/templates': [401, 200, 200, 200, 200, 200],
  'GET /api/v1/prompts/templates/:id': [401, 404, 404, 404, 200, 404],
  'PATCH /api/v1/prompts/templates/:id': [401, 404, 404, 404, 200, 404],
  'GET /api/v1/prompts/templates/:id/versions': [401, 404, 404, 404, 200, 404],
  'GET /api/v1/prompts/templates/:id/versions/:version': [401, 404, 404, 404, 200, 404],
  'POST /api/v1/prompts/templates/:id/versions/:version/restore': [401, 404, 404, 404, 200, 404],
  'POST /api/v1/prompts/templates/:id/test': [401, 404, 404, 404, 200, 404],
  'GET /api/v1/projects/:id/prompt-set': [401, 404, 200, 200, 200, 404],
  'PUT /api/v1/projects/:id/prompt-set': [401, 404, 403, 200, 200, 404],
  'POST /api/v1/projects/:id/stages/:stage/runs': [401, 404, 403, 202, 202, 404],
  'GET /api/v1/projects/:id/stages/:stage/runs': [401, 404, 200, 200, 200, 404],
  'PATCH /api/v1/projects/:id/stages/:stage': [401, 404, 403, 200, 200, 404],
  'GET /api/v1/projects/:id/stages/:stage/settings': [401, 404, 200, 200, 200, 404],
  'PATCH /api/v1/projects/:id/stages/:stage/settings': [401, 404, 403, 200, 200, 404],
  'GET /api/v1/runs/:run_id': [401, 404, 200, 200, 200, 404],
  'POST /api/v1/runs/:run_id/cancel': [401, 404, 403, 200, 200, 404],
  'POST /api/v1/runs/:run_id/restore': [401, 404, 403, 200, 200, 404],
  'GET /api/v1/runs/:run_id/events': [401, 404, 200, 200, 200, 404],
  'GET /api/v1/projects/:id/events': [401, 404, 200, 200, 200, 404],
  'POST /api/v1/projects/:id/rewrite-stream': [401, 404, 403, 200, 200, 404],
  'POST /api/v1/projects/:id/storyboard-stream': [401, 404, 403, 200, 200, 404],
  'POST /api/v1/projects/:id/camera-stream': [401, 404, 403, 400, 400, 404],
  'POST /api/v1/projects/:id/image-stream': [401, 404, 403, 400, 400, 404],
  'POST /api/v1/projects/:id/narration-stream': [401, 404, 403, 400, 400, 404],
  'POST /api/v1/projects/:id/video-stream': [401, 404, 403, 400, 400, 404],
  'POST /api/v1/projects/:id/export-stream': [401, 404, 403, 400, 400, 404],
  'GET /api/v1/projects/:id/storyboards': [401, 404, 200, 200, 200, 404],
  'POST /api/v1/projects/:id/storyboards': [401, 404, 403, 201, 201, 404],
  'POST /api/v1/projects/:id/storyboards/reorder': [401, 404, 403, 200, 200, 404],
  'PATCH /api/v1/storyboards/:id': [401, 404, 403, 200, 200, 404],
  'DELETE /api/v1/storyboards/:id': [401, 404, 403, 204, 204, 404],
  'GET /api/v1/projects/:id/camera-movements': [401, 404, 200, 200, 200, 404],
  'PATCH /api/v1/camera-movements/:id': [401, 404, 403, 200, 200, 404],
  'POST /api/v1/projects/:id/execute': [401, 404, 403, 202, 202, 404],
  'POST /api/v1/projects/:id/pause': [401, 404, 403, 409, 409, 404],
  'POST /api/v1/projects/:id/resume': [401, 404, 403, 409, 409, 404],
  'POST /api/v1/projects/:id/stages/:stage/retry': [401, 404, 403, 202, 202, 404],
  'POST /api/v1/projects/:id/stages/:stage/skip': [401, 404, 403, 200, 200, 404],
  'GET /api/v1/media/:id': [401, 404, 200, 200, 200, 404],
  'GET /api/v1/projects/:id/export/preview/': [401, 404, 200, 200, 200, 404],
  'POST /api/v1/projects/:id/stages/export/music/': [401, 404, 403, 400, 400, 404],
  'GET /api/v1/projects/:id/stages/image/estimate': [401, 404, 200, 200, 200, 404],
  'POST /api/v1/projects/:id/images/:imageId/choose': [401, 404, 403, 200, 200, 404],
  'POST /api/v1/projects/:id/storyboards/:shotId/images': [401, 404, 403, 201, 201, 404],
  'GET /api/v1/projects/:id/characters': [401, 404, 200, 200, 200, 404],
  'PUT /api/v1/projects/:id/characters': [401, 404, 403, 200, 200, 404],
  'POST /api/v1/projects/:id/characters/pictures': [401, 404, 403, 201, 201, 404],
  'POST /api/v1/projects/:id/characters/suggest': [401, 404, 403, 200, 200, 404],
  'GET /api/v1/projects/:id/media/usage': [401, 404, 200, 200, 200, 404],
  'POST /api/v1/projects/:id/media/clean-up': [401, 404, 403, 200, 200, 404],
  'GET /api/v1/projects/:id/narration/voices': [401, 404, 200, 200, 200, 404],
  'POST /api/v1/projects/:id/narration/voice-sample': [401, 404, 200, 200, 200, 404],
  'PATCH /api/v1/projects/:id/narration/:shot_id/sentences/:index': [401, 404, 403, 202, 202, 404],
  'GET /api/v1/projects/:id/subtitles': [401, 404, 200, 200, 200, 404],
  'PUT /api/v1/projects/:id/subtitles': [401, 404, 403, 400, 400, 404],
  'GET /api/v1/projects/:id/subtitles.srt': [401, 404, 200, 200, 200, 404],
  'GET /api/v1/projects/:id/subtitles.ass': [401, 404, 200, 200, 200, 404],
  // Operational data: the scraper's METRICS_TOKEN (test/metrics.test.ts) or an admin.
  'GET /metrics': [401, 403, 403, 403, 403, 200],
};

type World = Awaited<ReturnType<typeof buildWorld>>;
interface Cell {
  params: Record<string, string>;
  /** JSON, or a Buffer sent as a PNG file. */
  body?: unknown;
  /** A session of the role other than its usual one (for signing out). */
  cookie?: string;
}

/** How a route is called: its ids, its body, and for calls that use something up, a fresh object per call. */
const CALLS: Record<string, (w: World, role: Role) => Promise<Cell> | Cell> = {
  'POST /api/v1/auth/setup': () => ({ params: {}, body: { ...ADMIN, email: 'second-admin@example.com' } }),
  'POST /api/v1/auth/login': () => ({ params: {}, body: { email: 'nobody@example.com', password: 'not the password' } }),
  'POST /api/v1/auth/register': (_w, role) => ({ params: {}, body: { email: `new-${role}@example.com`, name: 'New', password: 'password-123' } }),
  // Signing out a fresh session of the role: the role's own session must live on for the next rows.
  'POST /api/v1/auth/logout': async (w, role) => ({ params: {}, body: {}, ...(role !== 'anonymous' && { cookie: await w.secondSession(role) }) }),
  'POST /api/v1/auth/password': () => ({ params: {}, body: { current_password: 'not the password', new_password: 'a new password' } }),
  'POST /api/v1/auth/tokens': () => ({ params: {}, body: { name: 'matrix' } }),
  'DELETE /api/v1/auth/tokens/:id': async (w) => ({ params: { id: await w.ownerToken() } }),
  'POST /api/v1/users': (_w, role) => ({ params: {}, body: { email: `made-by-${role}@example.com`, name: 'Made', password: 'password-123', role: 'user' } }),
  'PATCH /api/v1/users/:id': async (w) => ({ params: { id: w.throwawayId }, body: { name: 'Renamed' } }),
  'DELETE /api/v1/users/:id': async (w, role) => ({ params: { id: await w.newUser(`deleted-by-${role}@example.com`) } }),
  'DELETE /api/v1/users/:id/tokens/:token_id': async (w) => ({ params: { id: w.ownerId, token_id: await w.ownerToken() } }),
  'PATCH /api/v1/settings': () => ({ params: {}, body: { allow_registration: false } }),

  'POST /api/v1/projects': () => ({ params: {}, body: { name: 'mine', original_topic: 't' } }),
  'PATCH /api/v1/projects/:id': (w) => ({ params: { id: w.projectId }, body: { name: '矩阵' } }),
  'DELETE /api/v1/projects/:id': async (w) => ({ params: { id: await w.newProject() } }),
  'POST /api/v1/projects/:id/members': (w) => ({ params: { id: w.projectId }, body: { email: 'nobody@example.com', role: 'viewer' } }),
  'PATCH /api/v1/projects/:id/members/:user_id': (w) => ({ params: { id: w.projectId, user_id: w.viewerId }, body: { role: 'viewer' } }),
  'DELETE /api/v1/projects/:id/members/:user_id': async (w) => ({ params: { id: await w.newProject(), user_id: w.viewerId } }),

  'POST /api/v1/models/providers': (w) => ({ params: {}, body: w.providerBody('made') }),
  'PATCH /api/v1/models/providers/:id': (w) => ({ params: { id: w.providerId }, body: { name: 'fast' } }),
  'DELETE /api/v1/models/providers/:id': async (w) => ({ params: { id: await w.newProvider() } }),

  'POST /api/v1/prompts/sets': () => ({ params: {}, body: { name: 'mine' } }),
  'PATCH /api/v1/prompts/sets/:id': (w) => ({ params: { id: w.setId }, body: { name: "owner's own" } }),
  'DELETE /api/v1/prompts/sets/:id': async (w) => ({ params: { id: await w.newSet() } }),
  'PATCH /api/v1/prompts/templates/:id': (w) => ({ params: { id: w.templateId }, body: { content: '改写：{{ original_text }}' } }),
  'POST /api/v1/prompts/templates/:id/test': (w) => ({ params: { id: w.templateId }, body: { variables: {} } }),
  'PUT /api/v1/projects/:id/prompt-set': (w) => ({ params: { id: w.projectId }, body: { prompt_set_id: null } }),

  // Starting a run uses the project up (one active run per stage): a fresh project for every call.
  'POST /api/v1/projects/:id/stages/:stage/runs': async (w) => ({ params: { id: await w.newProject(), stage: 'rewrite' }, body: { input: {}, provider_id: w.providerId } }),
  'POST /api/v1/projects/:id/execute': async (w) => ({ params: { id: await w.newProject() }, body: {} }),
  'POST /api/v1/projects/:id/stages/:stage/retry': async (w) => ({ params: { id: await w.newProject(), stage: 'rewrite' } }),
  'PATCH /api/v1/projects/:id/stages/:stage': (w) => ({ params: { id: w.projectId, stage: 'rewrite' }, body: { output: { rewritten_text: '雨夜里的猫' } } }),

  'POST /api/v1/projects/:id/storyboards': (w) => ({ params: { id: w.projectId }, body: { narration_text: '又一个镜头' } }),
  'POST /api/v1/projects/:id/storyboards/reorder': async (w) => ({ params: { id: w.projectId }, body: { ids: await w.shotIds() } }),
  'PATCH /api/v1/storyboards/:id': (w) => ({ params: { id: w.shotId }, body: { narration_text: '雨夜' } }),
  'DELETE /api/v1/storyboards/:id': async (w) => ({ params: { id: await w.newShot() } }),
  'PATCH /api/v1/camera-movements/:id': (w) => ({ params: { id: w.movementId }, body: { movement_type: 'zoom_in' } }),
  'POST /api/v1/projects/:id/storyboards/:shotId/images': (w) => ({ params: { id: w.projectId, shotId: w.shotId }, body: w.png }),
  'POST /api/v1/projects/:id/characters/pictures': (w) => ({ params: { id: w.projectId }, body: w.png }),
  'POST /api/v1/projects/:id/images/:imageId/choose': (w) => ({ params: { id: w.projectId, imageId: w.imageId } }),
  'GET /api/v1/projects/:id/stages/:stage/settings': (w) => ({ params: { id: w.projectId, stage: 'narration' } }),
  'PATCH /api/v1/projects/:id/stages/:stage/settings': (w) => ({ params: { id: w.projectId, stage: 'narration' }, body: {} }),
  // Re-voicing a sentence starts a narration run: a fresh project (and shot) for every call.
  'PATCH /api/v1/projects/:id/narration/:shot_id/sentences/:index': async (w) => {
    const id = await w.newProject();
    const shot = w.ok(await w.clients.owner.post(`/api/v1/projects/${id}/storyboards/`, { narration_text: '雨夜。' }), 201).id as string;
    return { params: { id, shot_id: shot, index: '0' }, body: { text: '新的一句' } };
  },
  'PUT /api/v1/projects/:id/characters': (w) => ({ params: { id: w.projectId }, body: { characters: [] } }),
  'PUT /api/v1/projects/:id/subtitles': (w) => ({ params: { id: w.projectId }, body: { lines: [] } }),
};

describe(`authorization matrix: every route × every role (${process.env.TEST_DB ?? 'pglite'})`, () => {
  let studio: TestStudio;
  let fake: Awaited<ReturnType<typeof startFakeLlm>>;
  let world: World;

  beforeAll(async () => {
    fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    studio = await startStudio({ metricsToken: 'matrix-metrics-token-0123456789' });
    world = await buildWorld(studio, fake.url);
  });
  afterAll(async () => {
    await studio?.close();
    await fake?.close();
  });

  const routes = () =>
    studio.routes()
      .filter((r) => (r.url.startsWith('/api/') || r.url === '/metrics') && r.method !== 'HEAD') // HEAD mirrors GET
      .map((r) => `${r.method} ${r.url}`);

  it('has a row for every route of the API, and no row for a route that is gone', () => {
    const table = Object.keys(MATRIX).sort();
    expect(routes().sort(), 'routes without a row in MATRIX (or rows without a route)').toEqual(table);
  });

  it('answers every role with the status the table expects', async () => {
    const observed: Record<string, number[]> = {};
    for (const key of routes()) {
      const [method, pattern] = key.split(' ');
      observed[key] = [];
      for (const role of ROLES) {
        const cell = await (CALLS[key] ?? defaultCall(pattern, method))(world, role);
        observed[key].push(await world.call(role, method, concretePath(pattern, cell.params), cell.body, cell.cookie));
      }
    }
    const wrong = Object.entries(observed)
      .filter(([key, statuses]) => JSON.stringify(statuses) !== JSON.stringify(MATRIX[key]))
      .map(([key, statuses]) => `  '${key}': [${statuses.join(', ')}], // table: [${MATRIX[key]?.join(', ') ?? 'missing'}]`);
    expect(wrong, `routes answering otherwise than the table says:\n${wrong.join('\n')}`).toEqual([]);
  }, 900_000);
});

/** Which id a route's `:id` names, by what the path is about; any other path gets an id that exists nowhere. */
const ID_BY_PREFIX: [prefix: string, key: 'projectId' | 'runId' | 'providerId' | 'setId' | 'templateId' | 'shotId' | 'mediaId' | 'ownerId'][] = [
  ['/api/v1/projects/', 'projectId'],
  ['/api/v1/runs/', 'runId'],
  ['/api/v1/models/providers/', 'providerId'],
  ['/api/v1/prompts/sets/', 'setId'],
  ['/api/v1/prompts/templates/', 'templateId'],
  ['/api/v1/storyboards/', 'shotId'],
  ['/api/v1/media/', 'mediaId'],
  ['/api/v1/users/', 'ownerId'],
];

/** How a route without an entry in CALLS is called. */
function defaultCall(pattern: string, method: string) {
  // The seed's start-and-stream routes start a run: a fresh project for every call, as for run starts.
  if (pattern.endsWith('-stream')) return async (w: World): Promise<Cell> => ({ params: { id: await w.newProject() }, body: { provider_id: w.providerId } });
  return (w: World): Cell => {
    const key = ID_BY_PREFIX.find(([prefix]) => pattern.startsWith(prefix))?.[1];
    const id = key ? w[key] : crypto.randomUUID();
    return {
      params: { id, run_id: w.runId, user_id: w.viewerId, shotId: w.shotId, shot_id: w.shotId, stage: 'rewrite' },
      body: ['POST', 'PUT', 'PATCH'].includes(method) ? {} : undefined,
    };
  };
}

/** A project owned by `owner`, shared with `viewer` and `editor`, with a finished run, a shot and a media item. */
async function buildWorld(studio: TestStudio, fakeUrl: string) {
  const admin = await setupAdmin(studio);
  const clients: Record<Exclude<Role, 'anonymous'>, Client & { id: string }> = {
    stranger: await createUser(studio, admin, 'stranger@example.com'),
    viewer: await createUser(studio, admin, 'viewer@example.com'),
    editor: await createUser(studio, admin, 'editor@example.com'),
    owner: await createUser(studio, admin, 'owner@example.com'),
    admin: Object.assign(admin, { id: (await admin.get('/api/v1/auth/me')).body.id as string }),
  };
  const { owner } = clients;
  const ok = <T extends { status: number; body: any }>(res: T, status: number) => {
    if (res.status !== status) throw new Error(`setup: expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };

  const providerBody = (name: string) => ({ name, api_url: fakeUrl, api_key: 'sk-test-key-0000', model_name: 'fake-model?ttft=5&tps=2000&tokens=40', timeout_s: 5 });
  const provider = ok(await admin.post('/api/v1/models/providers/', providerBody('fast')), 201);
  const newProject = async () => {
    const id = ok(await owner.post('/api/v1/projects/', { name: '矩阵', original_topic: '一只猫在雨夜里寻找回家的路' }), 201).id as string;
    ok(await owner.post(`/api/v1/projects/${id}/members/`, { user_id: clients.viewer.id, role: 'viewer' }), 201);
    ok(await owner.post(`/api/v1/projects/${id}/members/`, { user_id: clients.editor.id, role: 'editor' }), 201);
    return id;
  };
  const projectId = await newProject();
  const run = ok(await owner.post(`/api/v1/projects/${projectId}/stages/rewrite/runs/`, { input: {}, provider_id: provider.id }), 202);
  for (let i = 0; i < 400 && ['queued', 'running'].includes((await owner.get(`/api/v1/runs/${run.id}/`)).body.status); i++) await new Promise((r) => setTimeout(r, 50));
  const shotId = ok(await owner.post(`/api/v1/projects/${projectId}/storyboards/`, { narration_text: '雨夜' }), 201).id as string;
  const media = await studio.app.services.media.put(projectId, Buffer.from('WEBVTT\n\n'), { kind: 'subtitle', mime: 'text/vtt' });
  const storyboards = new StoryboardRepository(studio.database.db);
  await storyboards.upsertMovements(projectId, [{ shot_id: shotId, movement_type: 'static', params: { speed: 1, intensity: 0.5, easing: 'linear', description: '' } } as never]);
  const movementId = (await storyboards.movementsOf(projectId))[0].id as string;
  const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#336699' } }).png().toBuffer();
  const image = await fetch(`${studio.url}/api/v1/projects/${projectId}/storyboards/${shotId}/images`, { method: 'POST', headers: { cookie: owner.cookie, 'content-type': 'image/png' }, body: new Uint8Array(png) });
  const imageId = ok({ status: image.status, body: await image.json() }, 201).id as string;
  const set = ok(await owner.post('/api/v1/prompts/sets/', { name: "owner's own" }), 201);
  const templateId = set.templates.find((t: any) => t.stage === 'rewrite').id as string;

  /** One request as `role`; answers the status (an event stream is left after its headers). */
  const call = async (role: Role, method: string, path: string, body?: unknown, cookie = role === 'anonymous' ? '' : clients[role].cookie) => {
    const res = await fetch(studio.url + path, {
      method,
      redirect: 'manual',
      headers: { ...(cookie && { cookie }), ...(body !== undefined && { 'content-type': Buffer.isBuffer(body) ? 'image/png' : 'application/json' }) },
      body: body === undefined ? undefined : Buffer.isBuffer(body) ? new Uint8Array(body) : JSON.stringify(body),
    });
    await res.body?.cancel();
    return res.status;
  };

  const throwawayId = ok(await admin.post('/api/v1/users/', { email: 'throwaway@example.com', name: 'T', password: 'password-123', role: 'user' }), 201).id as string;

  return {
    studio,
    clients,
    call,
    throwawayId,
    providerBody,
    shotIds: async () => (ok(await owner.get(`/api/v1/projects/${projectId}/storyboards/`), 200).results as { id: string }[]).map((s) => s.id),
    secondSession: async (role: Exclude<Role, 'anonymous'>) => {
      const c = new Client(studio.url);
      const email = role === 'admin' ? ADMIN.email : `${role}@example.com`;
      ok(await c.post('/api/v1/auth/login', { email, password: role === 'admin' ? ADMIN.password : `password-${email}` }), 200);
      return c.cookie;
    },
    ownerToken: async () => ok(await owner.post('/api/v1/auth/tokens', { name: 'to revoke' }), 201).id as string,
    newUser: async (email: string) => ok(await admin.post('/api/v1/users/', { email, name: 'U', password: 'password-123', role: 'user' }), 201).id as string,
    newProvider: async () => ok(await admin.post('/api/v1/models/providers/', providerBody('to delete')), 201).id as string,
    newSet: async () => ok(await owner.post('/api/v1/prompts/sets/', { name: 'to delete' }), 201).id as string,
    newShot: async () => ok(await owner.post(`/api/v1/projects/${projectId}/storyboards/`, { narration_text: 'to delete' }), 201).id as string,
    newProject,
    projectId,
    runId: run.id as string,
    movementId,
    png,
    imageId,
    shotId,
    mediaId: media.id,
    providerId: provider.id as string,
    setId: set.id as string,
    templateId,
    ownerId: owner.id,
    viewerId: clients.viewer.id,
    editorId: clients.editor.id,
    ok,
  };
}
