import type { StageKey } from '@ai-story/contracts';
import { and, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projects, promptSets, promptTemplates } from '../src/db/schema.ts';
import { checkTemplate } from '../src/prompts/template-check.ts';
import { TEMPLATED_STAGES as STAGES } from '../src/stages/index.ts';
import { Client, createUser, setupAdmin, snapshot, startStudio, TEST_DB, type TestStudio } from './helpers.ts';

const stageKeys = Object.keys(STAGES) as StageKey[];
type User = Client & { id: string };
const NOBODY = '00000000-0000-4000-8000-000000000000';

describe(`prompt templates (${TEST_DB})`, () => {
  let studio: TestStudio;
  let admin: Client;
  let alice: User;
  let bob: User;
  let shippedId: string;
  let aliceSet: any;
  let aliceRewrite: any;
  let projectId: string;

  const prompts = () => studio.app.services.prompts;
  const defaults = async () => (await studio.database.db.select({ id: promptSets.id }).from(promptSets).where(eq(promptSets.isDefault, true))).map((r) => r.id);
  const promptSetOf = async (id: string) => (await studio.database.db.select({ p: projects.promptSetId }).from(projects).where(eq(projects.id, id)))[0].p;

  beforeAll(async () => {
    studio = await startStudio();
    admin = await setupAdmin(studio);
    alice = await createUser(studio, admin, 'alice@example.com');
    bob = await createUser(studio, admin, 'bob@example.com');
    shippedId = (await alice.get('/api/v1/prompts/sets/')).body.results[0].id;
    aliceSet = (await alice.post('/api/v1/prompts/sets/', { name: '我的模板', description: 'mine' })).body;
    aliceRewrite = aliceSet.templates.find((t: any) => t.stage === 'rewrite');
    projectId = (await alice.post('/api/v1/projects/', { name: '雨夜', original_topic: '一只猫在雨夜里寻找回家的路' })).body.id;
  });
  afterAll(() => studio?.close());

  it('ships one default set, seen by everyone, with a template per stage and its declared variables', async () => {
    const list = await bob.get('/api/v1/prompts/sets/');
    expect(list.status).toBe(200);
    expect(list.body.count).toBe(1);
    expect(list.body.results[0]).toMatchObject({ id: shippedId, name: '默认模板 / Default', is_default: true, shared: true, owner_id: null, editable: false });
    expect((await admin.get(`/api/v1/prompts/sets/${shippedId}`)).body.editable).toBe(true);

    const set = (await bob.get(`/api/v1/prompts/sets/${shippedId}/`)).body;
    expect(set.templates.map((t: any) => t.stage)).toEqual(stageKeys);
    for (const t of set.templates) {
      const definition = STAGES[t.stage as StageKey]!;
      expect(t).toMatchObject({ set_id: shippedId, content: definition.defaultTemplate, version: 1 });
      expect(t.variables).toEqual(definition.templateVariables);
      // A shipped template must pass the same check a user's save does.
      expect(checkTemplate(t.content, definition.templateVariables)).toMatchObject({ unknown: [], error: null });
    }
    const listed = await bob.get(`/api/v1/prompts/templates/?set_id=${shippedId}`);
    expect(listed.body.count).toBe(stageKeys.length);
  });

  it('seeds idempotently on every start and gives a set a template for a stage it lacks', async () => {
    const lastStage = stageKeys.at(-1)!;
    await studio.database.db.delete(promptTemplates).where(and(eq(promptTemplates.setId, shippedId), eq(promptTemplates.stage, lastStage)));
    // With no template in the default set the engine still has the stage's own.
    const fallback = await prompts().templateFor({ id: projectId, promptSetId: null }, lastStage);
    expect(fallback).toEqual({ content: STAGES[lastStage]!.defaultTemplate, template_id: null, version: null });

    await studio.close({ keepDatabase: true });
    studio = await startStudio({}, studio.testDb);
    const reconnect = <T extends Client>(c: T): T => Object.assign(new Client(studio.url), { cookie: c.cookie, id: (c as Partial<User>).id }) as unknown as T;
    [admin, alice, bob] = [reconnect(admin), reconnect(alice), reconnect(bob)];
    const before = await snapshot(studio.database);
    await prompts().ensureShipped();
    expect(await snapshot(studio.database)).toEqual(before);

    const set = (await alice.get(`/api/v1/prompts/sets/${shippedId}/`)).body;
    expect(set.templates.map((t: any) => t.stage)).toEqual(stageKeys);
    expect(set.templates.at(-1)).toMatchObject({ stage: lastStage, version: 1, content: STAGES[lastStage]!.defaultTemplate });
    expect((await alice.get('/api/v1/prompts/sets/')).body.count).toBe(2); // the shipped set and her own, nothing new
    expect(await defaults()).toEqual([shippedId]);
  });

  it("creates a user's own set as a copy of the default set, or of the set named in copy_from", async () => {
    expect(aliceSet).toMatchObject({ name: '我的模板', description: 'mine', is_default: false, shared: false, editable: true });
    expect(aliceSet.templates.map((t: any) => [t.stage, t.version])).toEqual(stageKeys.map((s) => [s, 1]));
    expect(aliceRewrite.content).toBe(STAGES.rewrite!.defaultTemplate);

    const content = '改写：{{ original_text }}（{{ style_label }}）';
    expect((await alice.patch(`/api/v1/prompts/templates/${aliceRewrite.id}/`, { content })).status).toBe(200);
    const copy = await alice.post('/api/v1/prompts/sets/', { name: '副本', copy_from: aliceSet.id });
    expect(copy.status).toBe(201);
    expect(copy.body.templates.find((t: any) => t.stage === 'rewrite')).toMatchObject({ content, version: 1 });
    expect((await alice.delete(`/api/v1/prompts/sets/${copy.body.id}/`)).status).toBe(204);
    expect((await alice.get(`/api/v1/prompts/sets/${copy.body.id}/`)).status).toBe(404);
  });

  it('makes every save a new version, and a restore brings old content back as a newer version', async () => {
    const url = `/api/v1/prompts/templates/${aliceRewrite.id}`;
    const start = (await alice.get(url)).body;
    const saved = await alice.patch(`${url}/`, { content: '第二版：{{ original_text }}' });
    expect(saved.status).toBe(200);
    expect(saved.body).toMatchObject({ id: aliceRewrite.id, version: start.version + 1, content: '第二版：{{ original_text }}' });

    const versions = (await alice.get(`${url}/versions/`)).body;
    expect(versions.count).toBe(start.version + 1);
    expect(versions.results.map((v: any) => v.version)).toEqual(Array.from({ length: start.version + 1 }, (_, i) => start.version + 1 - i));
    expect(versions.results.at(-1)).toMatchObject({ version: 1, content: STAGES.rewrite!.defaultTemplate });
    expect(versions.results.every((v: any) => v.created_by === alice.id)).toBe(true);
    expect((await alice.get(`${url}/versions/1/`)).body.content).toBe(STAGES.rewrite!.defaultTemplate);

    const restored = await alice.post(`${url}/versions/1/restore/`);
    expect(restored.status).toBe(200);
    expect(restored.body).toMatchObject({ version: start.version + 2, content: STAGES.rewrite!.defaultTemplate });
    expect((await alice.get(url)).body.version).toBe(start.version + 2);
    expect((await alice.get(`${url}/versions/?page_size=1`)).body).toMatchObject({ count: start.version + 2, results: [{ version: start.version + 2 }] });
    expect((await alice.post(`${url}/versions/99/restore/`)).status).toBe(404);
  });

  it('rejects a template that uses a variable its stage does not declare, naming it, and changes nothing', async () => {
    const before = await snapshot(studio.database);
    const res = await alice.patch(`/api/v1/prompts/templates/${aliceRewrite.id}/`, { content: '{{ original_text }} {{ mood }} {% assign x = 1 %}{{ x }}' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_error');
    expect(res.body.error.details.fields.content).toContain('mood');
    expect(res.body.error.details.unknown).toEqual(['mood']);
    expect(await snapshot(studio.database)).toEqual(before);
  });

  it('test/ renders with the samples overridden by given values and says what is missing or unknown', async () => {
    const url = `/api/v1/prompts/templates/${aliceRewrite.id}/test/`;
    const saved = await alice.post(url, {});
    expect(saved.status).toBe(200);
    expect(saved.body.error).toBeNull();
    expect(saved.body.rendered).toContain(STAGES.rewrite!.templateVariables.find((v) => v.name === 'original_text')!.sample as string);

    const tried = await alice.post(url, { content: '[{{ original_text }}][{{ style }}][{{ mood }}]', variables: { original_text: '', style: 'suspense' } });
    expect(tried.body).toEqual({ rendered: '[][suspense][]', missing: ['original_text'], unknown: ['mood'], error: null });

    const broken = await alice.post(url, { content: '{% if original_text %}no end' });
    expect(broken.status).toBe(200);
    expect(broken.body.error).toMatch(/not closed/);

    // Anyone may try a shared template; trying changes nothing.
    const shippedRewrite = (await bob.get(`/api/v1/prompts/templates/?set_id=${shippedId}&stage=rewrite`)).body.results[0];
    const before = await snapshot(studio.database);
    expect((await bob.post(`/api/v1/prompts/templates/${shippedRewrite.id}/test/`, { variables: { original_text: '灯塔' } })).body.rendered).toContain('灯塔');
    expect(await snapshot(studio.database)).toEqual(before);
  });

  it.each([
    ['an include of a system file', "{% include '/etc/passwd' %}", /include/],
    ['a render of a project file', "{% render 'package.json' %}", /render/],
    ['a layout', "{% layout 'apps/server/src/config.ts' %}x", /layout/],
  ])('test/ reports %s as an error and reads nothing; a save of it is refused', async (_label, content, message) => {
    const res = await alice.post(`/api/v1/prompts/templates/${aliceRewrite.id}/test/`, { content });
    expect(res.status).toBe(200);
    expect(res.body.error).toMatch(message);
    expect(res.body.rendered).toBe('');
    expect(JSON.stringify(res.body)).not.toMatch(/root:|"name"|process\.env/);
    const save = await alice.patch(`/api/v1/prompts/templates/${aliceRewrite.id}/`, { content });
    expect(save.status).toBe(400);
    expect(save.body.error.details.fields.content).toMatch(message);
  });

  it('test/ renders prototype and constructor tricks inert', async () => {
    const content = "[{{ original_text.constructor }}][{{ original_text.constructor.constructor }}][{{ style.__proto__ }}][{{ x.constructor.name }}][{{ original_text | split: '' | first | append: '' }}]";
    const res = await alice.post(`/api/v1/prompts/templates/${aliceRewrite.id}/test/`, { content, variables: { original_text: 'ab' } });
    expect(res.status).toBe(200);
    expect(res.body.rendered).toBe('[][][][][a]');
    expect(res.body.unknown).toEqual(['x']);
    expect(JSON.stringify(res.body)).not.toMatch(/function|native code|Object/);
  });

  it("lets only admins change a shared set; a user's own set is theirs alone", async () => {
    const shippedRewrite = (await alice.get(`/api/v1/prompts/templates/?set_id=${shippedId}&stage=rewrite`)).body.results[0];
    const before = await snapshot(studio.database);
    expect((await alice.patch(`/api/v1/prompts/templates/${shippedRewrite.id}/`, { content: '{{ original_text }}' })).status).toBe(403);
    expect((await alice.post(`/api/v1/prompts/templates/${shippedRewrite.id}/versions/1/restore/`)).status).toBe(403);
    expect((await alice.patch(`/api/v1/prompts/sets/${shippedId}/`, { name: 'mine now' })).status).toBe(403);
    expect((await alice.delete(`/api/v1/prompts/sets/${shippedId}/`)).status).toBe(403);
    expect((await alice.post('/api/v1/prompts/sets/', { name: 'shared', shared: true })).status).toBe(403);
    expect(await snapshot(studio.database)).toEqual(before);

    // Another user — an admin too — does not learn that Alice's set exists.
    for (const other of [bob, admin]) {
      expect((await other.get(`/api/v1/prompts/sets/${aliceSet.id}/`)).status).toBe(404);
      expect((await other.patch(`/api/v1/prompts/sets/${aliceSet.id}/`, { name: 'x' })).status).toBe(404);
      expect((await other.delete(`/api/v1/prompts/sets/${aliceSet.id}/`)).status).toBe(404);
      expect((await other.get(`/api/v1/prompts/templates/${aliceRewrite.id}/`)).status).toBe(404);
      expect((await other.patch(`/api/v1/prompts/templates/${aliceRewrite.id}/`, { content: '{{ original_text }}' })).status).toBe(404);
      expect((await other.get(`/api/v1/prompts/templates/${aliceRewrite.id}/versions/`)).status).toBe(404);
      expect((await other.post(`/api/v1/prompts/templates/${aliceRewrite.id}/versions/1/restore/`)).status).toBe(404);
      expect((await other.post(`/api/v1/prompts/templates/${aliceRewrite.id}/test/`, {})).status).toBe(404);
      expect((await other.get(`/api/v1/prompts/templates/?set_id=${aliceSet.id}`)).status).toBe(404);
      expect((await other.get('/api/v1/prompts/sets/')).body.results.map((s: any) => s.id)).not.toContain(aliceSet.id);
      expect((await other.get('/api/v1/prompts/templates/')).body.results.map((t: any) => t.set_id)).not.toContain(aliceSet.id);
    }
    expect(await snapshot(studio.database)).toEqual(before);

    const renamed = await alice.patch(`/api/v1/prompts/sets/${aliceSet.id}/`, { name: '我的模板 v2', description: '' });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ name: '我的模板 v2', description: '', is_default: false });
    expect(renamed.body.templates).toHaveLength(stageKeys.length);

    const edited = await admin.patch(`/api/v1/prompts/templates/${shippedRewrite.id}/`, { content: `${STAGES.rewrite!.defaultTemplate}\n` });
    expect(edited.status).toBe(200);
    expect(edited.body.version).toBe(2);
  });

  it('keeps exactly one default set: marking another unmarks the previous', async () => {
    expect((await alice.patch(`/api/v1/prompts/sets/${aliceSet.id}/`, { is_default: true })).status).toBe(403);
    const own = (await admin.post('/api/v1/prompts/sets/', { name: 'admin only' })).body;
    const privateDefault = await admin.patch(`/api/v1/prompts/sets/${own.id}/`, { is_default: true });
    expect(privateDefault.status).toBe(400);
    expect(privateDefault.body.error.details.fields).toHaveProperty('is_default');

    const team = await admin.post('/api/v1/prompts/sets/', { name: '团队模板', shared: true, copy_from: shippedId });
    expect(team.status).toBe(201);
    expect(team.body).toMatchObject({ shared: true, owner_id: null, is_default: false });
    expect((await alice.get('/api/v1/prompts/sets/')).body.results.map((s: any) => s.id)).toContain(team.body.id);

    const marked = await admin.patch(`/api/v1/prompts/sets/${team.body.id}/`, { is_default: true });
    expect(marked.status).toBe(200);
    expect(marked.body.is_default).toBe(true);
    expect(await defaults()).toEqual([team.body.id]);
    expect((await alice.get('/api/v1/prompts/sets/')).body.results[0]).toMatchObject({ id: team.body.id, is_default: true });

    expect((await admin.patch(`/api/v1/prompts/sets/${team.body.id}/`, { is_default: false })).status).toBe(409);
    expect((await admin.delete(`/api/v1/prompts/sets/${team.body.id}/`)).status).toBe(409);
    expect(await defaults()).toEqual([team.body.id]);

    // Two admins marking different sets at once still leave exactly one default.
    await Promise.all([
      admin.patch(`/api/v1/prompts/sets/${shippedId}/`, { is_default: true }),
      admin.patch(`/api/v1/prompts/sets/${team.body.id}/`, { is_default: true }),
      admin.patch(`/api/v1/prompts/sets/${shippedId}/`, { is_default: true }),
    ]);
    expect(await defaults()).toHaveLength(1);

    expect((await admin.patch(`/api/v1/prompts/sets/${shippedId}/`, { is_default: true })).status).toBe(200);
    expect(await defaults()).toEqual([shippedId]);
    expect((await admin.delete(`/api/v1/prompts/sets/${team.body.id}/`)).status).toBe(204);
    expect((await admin.delete(`/api/v1/prompts/sets/${own.id}/`)).status).toBe(204);
  });

  it("lets a project choose a set, and templateFor answers that set's template", async () => {
    const fromDefault = await prompts().templateFor({ id: projectId, promptSetId: await promptSetOf(projectId) }, 'rewrite');
    const shippedRewrite = (await alice.get(`/api/v1/prompts/templates/?set_id=${shippedId}&stage=rewrite`)).body.results[0];
    expect(fromDefault).toEqual({ content: shippedRewrite.content, template_id: shippedRewrite.id, version: shippedRewrite.version });
    expect((await alice.get(`/api/v1/projects/${projectId}/prompt-set/`)).body).toEqual({ prompt_set_id: null, prompt_set_name: null });

    await alice.patch(`/api/v1/prompts/templates/${aliceRewrite.id}/`, { content: '项目专用：{{ original_text }}' });
    const chosen = await alice.put(`/api/v1/projects/${projectId}/prompt-set/`, { prompt_set_id: aliceSet.id });
    expect(chosen.status).toBe(200);
    expect(chosen.body).toEqual({ prompt_set_id: aliceSet.id, prompt_set_name: '我的模板 v2' });
    const current = (await alice.get(`/api/v1/prompts/templates/${aliceRewrite.id}/`)).body;
    expect(await prompts().templateFor({ id: projectId, promptSetId: await promptSetOf(projectId) }, 'rewrite')).toEqual({
      content: '项目专用：{{ original_text }}',
      template_id: aliceRewrite.id,
      version: current.version,
    });
    // A set id that no longer exists falls back to the default set.
    expect((await prompts().templateFor({ id: projectId, promptSetId: NOBODY }, 'rewrite')).template_id).toBe(shippedRewrite.id);

    // Choosing needs edit access, and a set the chooser can see.
    expect((await bob.put(`/api/v1/projects/${projectId}/prompt-set/`, { prompt_set_id: null })).status).toBe(404);
    await alice.post(`/api/v1/projects/${projectId}/members/`, { email: 'bob@example.com', role: 'viewer' });
    expect((await bob.get(`/api/v1/projects/${projectId}/prompt-set/`)).body.prompt_set_id).toBe(aliceSet.id);
    expect((await bob.put(`/api/v1/projects/${projectId}/prompt-set/`, { prompt_set_id: null })).status).toBe(403);
    const bobSet = (await bob.post('/api/v1/prompts/sets/', { name: 'bob' })).body;
    const foreign = await alice.put(`/api/v1/projects/${projectId}/prompt-set/`, { prompt_set_id: bobSet.id });
    expect(foreign.status).toBe(400);
    expect(foreign.body.error.details.fields).toHaveProperty('prompt_set_id');
    expect(await promptSetOf(projectId)).toBe(aliceSet.id);

    // Deleting a chosen set sends the project back to the default.
    const temp = (await alice.post('/api/v1/prompts/sets/', { name: 'temp' })).body;
    await alice.put(`/api/v1/projects/${projectId}/prompt-set/`, { prompt_set_id: temp.id });
    expect((await alice.delete(`/api/v1/prompts/sets/${temp.id}/`)).status).toBe(204);
    expect(await promptSetOf(projectId)).toBeNull();

    await alice.put(`/api/v1/projects/${projectId}/prompt-set/`, { prompt_set_id: aliceSet.id });
    expect((await alice.put(`/api/v1/projects/${projectId}/prompt-set/`, { prompt_set_id: null })).body.prompt_set_id).toBeNull();
    expect((await prompts().templateFor({ id: projectId, promptSetId: null }, 'rewrite')).template_id).toBe(shippedRewrite.id);
  });

  it("does not let an editor put their private set on the owner's project (the owner could not open it)", async () => {
    const projectId = (await alice.post('/api/v1/projects/', { name: 'editor set', original_topic: 't' })).body.id;
    expect((await alice.post(`/api/v1/projects/${projectId}/members/`, { email: 'bob@example.com', role: 'editor' })).status).toBe(202);
    const bobSet = (await bob.post('/api/v1/prompts/sets/', { name: "bob's private" })).body;
    const before = await snapshot(studio.database);
    const attach = await bob.put(`/api/v1/projects/${projectId}/prompt-set/`, { prompt_set_id: bobSet.id });
    expect(attach.status).toBe(400);
    expect(attach.body.error.details.fields).toHaveProperty('prompt_set_id');
    expect(await snapshot(studio.database)).toEqual(before);
    expect((await alice.get(`/api/v1/projects/${projectId}/prompt-set/`)).body.prompt_set_id).toBeNull();

    // A shared set, and the owner's own set, stay choosable by the editor.
    const shared = (await bob.get('/api/v1/prompts/sets/')).body.results.find((s: any) => s.shared);
    expect((await bob.put(`/api/v1/projects/${projectId}/prompt-set/`, { prompt_set_id: shared.id })).status).toBe(200);
    const aliceSet = (await alice.post('/api/v1/prompts/sets/', { name: "alice's for this project" })).body;
    expect((await alice.put(`/api/v1/projects/${projectId}/prompt-set/`, { prompt_set_id: aliceSet.id })).status).toBe(200);
    expect((await bob.get(`/api/v1/projects/${projectId}/prompt-set/`)).body.prompt_set_id).toBe(aliceSet.id);
  });

  const long = (n: number) => 'x'.repeat(n);
  it.each([
    ['POST', '/api/v1/prompts/sets/', { name: '' }, 'name'],
    ['POST', '/api/v1/prompts/sets/', { name: long(101) }, 'name'],
    ['POST', '/api/v1/prompts/sets/', { description: 'no name' }, 'name'],
    ['POST', '/api/v1/prompts/sets/', { name: 'ok', copy_from: 'not-a-uuid' }, 'copy_from'],
    ['POST', '/api/v1/prompts/sets/', { name: 'ok', copy_from: NOBODY }, 'copy_from'],
    ['POST', '/api/v1/prompts/sets/', { name: 'ok', copy_from: '{bobSet}' }, 'copy_from'],
    ['POST', '/api/v1/prompts/sets/', { name: 'ok', shared: 'yes' }, 'shared'],
    ['POST', '/api/v1/prompts/sets/', '{"name": "x",', 'body'],
    ['PATCH', '/api/v1/prompts/sets/{set}/', { name: 5 }, 'name'],
    ['PATCH', '/api/v1/prompts/sets/{set}/', { description: long(2001) }, 'description'],
    ['PATCH', '/api/v1/prompts/sets/{set}/', { is_default: 'true' }, 'is_default'],
    ['PATCH', '/api/v1/prompts/templates/{tpl}/', {}, 'content'],
    ['PATCH', '/api/v1/prompts/templates/{tpl}/', { content: '' }, 'content'],
    ['PATCH', '/api/v1/prompts/templates/{tpl}/', { content: '  \n ' }, 'content'],
    ['PATCH', '/api/v1/prompts/templates/{tpl}/', { content: long(20_001) }, 'content'],
    ['PATCH', '/api/v1/prompts/templates/{tpl}/', { content: '{% if original_text %}' }, 'content'],
    ['PATCH', '/api/v1/prompts/templates/{tpl}/', { content: '{{ original_text | shell }}' }, 'content'],
    ['POST', '/api/v1/prompts/templates/{tpl}/test/', { content: long(20_001) }, 'content'],
    ['POST', '/api/v1/prompts/templates/{tpl}/test/', { variables: ['a'] }, 'variables'],
    ['PUT', '/api/v1/projects/{project}/prompt-set/', { prompt_set_id: 'nope' }, 'prompt_set_id'],
    ['PUT', '/api/v1/projects/{project}/prompt-set/', {}, 'prompt_set_id'],
    ['PUT', '/api/v1/projects/{project}/prompt-set/', { prompt_set_id: NOBODY }, 'prompt_set_id'],
    ['GET', '/api/v1/prompts/templates/?set_id=bad', undefined, 'set_id'],
    ['GET', '/api/v1/prompts/templates/?stage=nonsense', undefined, 'stage'],
    ['GET', '/api/v1/prompts/sets/?page_size=1000', undefined, 'page_size'],
  ])('%s %s with a bad field is refused with 400 naming it and changes nothing', async (method, url, body, field) => {
    const bobSet = (await bob.get('/api/v1/prompts/sets/')).body.results.find((s: any) => !s.shared).id;
    const fill = (s: string) => s.replace('{set}', aliceSet.id).replace('{tpl}', aliceRewrite.id).replace('{project}', projectId).replace('{bobSet}', bobSet);
    const payload = typeof body === 'object' ? JSON.parse(fill(JSON.stringify(body))) : body;
    const before = await snapshot(studio.database);
    const res = await alice.request(method, fill(url), payload, payload === undefined ? {} : { 'content-type': 'application/json' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_error');
    expect(Object.keys(res.body.error.details.fields)).toContain(field);
    expect(await snapshot(studio.database)).toEqual(before);
  });

  it.each([
    ['GET', '/api/v1/prompts/sets/not-a-uuid/'],
    ['GET', `/api/v1/prompts/sets/${NOBODY}/`],
    ['DELETE', `/api/v1/prompts/sets/${NOBODY}/`],
    ['GET', '/api/v1/prompts/templates/123/'],
    ['GET', `/api/v1/prompts/templates/${NOBODY}/versions/`],
    ['GET', '/api/v1/prompts/templates/{tpl}/versions/abc/'],
    ['GET', '/api/v1/prompts/templates/{tpl}/versions/9999/'],
    ['POST', '/api/v1/prompts/templates/{tpl}/versions/0/restore/'],
    ['GET', `/api/v1/prompts/templates/?set_id=${NOBODY}`],
    ['PUT', `/api/v1/projects/${NOBODY}/prompt-set/`],
  ])('%s %s answers 404 and changes nothing', async (method, url) => {
    const before = await snapshot(studio.database);
    const res = await alice.request(method, url.replace('{tpl}', aliceRewrite.id), method === 'PUT' ? { prompt_set_id: null } : undefined);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
    expect(await snapshot(studio.database)).toEqual(before);
  });

  it('documents the prompt endpoints in the OpenAPI page', async () => {
    const spec = (await new Client(studio.url).get('/docs/json')).body;
    const paths = Object.keys(spec.paths);
    for (const p of ['/api/v1/prompts/sets', '/api/v1/prompts/templates/{id}/test', '/api/v1/projects/{id}/prompt-set']) expect(paths).toContain(p);
    const count = (await studio.database.db.execute(sql`select count(*)::int as n from prompt_sets where is_default`)) as any;
    expect((count.rows ?? count)[0].n).toBe(1);
  });
});
