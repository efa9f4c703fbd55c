import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Client, createUser, setupAdmin, snapshot, startStudio, TEST_DB, type TestStudio } from './helpers.ts';

type User = Client & { id: string };

/** A million steps that each print: liquidjs counts the range as allowed and stops the render at its 1 s budget. */
const BOMB = '{% for i in (1..999999) %}{{ i }}{% endfor %}';
/** The templates of issue 15: a ten-million range, empty (never checks the clock) or printing (grows the heap). */
const ISSUE_BOMBS = ['{% for i in (1..9999999) %}{% endfor %}', '{% for i in (1..9999999) %}{{ i }}{% endfor %}'];
const TESTS_PER_MINUTE = 10;

describe(`a template render cannot stall the studio (${TEST_DB})`, () => {
  let studio: TestStudio;
  let admin: Client;
  let alice: User;
  let bob: User;
  let aliceRewrite: { id: string };

  const testUrl = (templateId: string) => `/api/v1/prompts/templates/${templateId}/test/`;
  const renderer = () => studio.app.services.renderer;
  const rewriteOf = async (user: Client) => {
    const set = (await user.post('/api/v1/prompts/sets/', { name: '我的模板', description: '' })).body;
    return { set, rewrite: set.templates.find((t: { stage: string }) => t.stage === 'rewrite') };
  };
  const newProject = async (user: Client) => (await user.post('/api/v1/projects/', { name: '雨夜', original_topic: '一只猫在雨夜里寻找回家的路' })).body.id as string;

  beforeAll(async () => {
    studio = await startStudio({ templateTestRateLimit: TESTS_PER_MINUTE });
    admin = await setupAdmin(studio);
    alice = await createUser(studio, admin, 'alice@example.com');
    bob = await createUser(studio, admin, 'bob@example.com');
    aliceRewrite = (await rewriteOf(alice)).rewrite;
  });
  afterAll(() => studio?.close());

  it('while eight bombs are tested, /healthz answers before any of them has finished; each ends in a 422 naming the template', async () => {
    const finished: number[] = [];
    const bombs = Array.from({ length: 8 }, (_, i) =>
      alice.post(testUrl(aliceRewrite.id), { content: BOMB }).then((res) => {
        finished.push(i);
        return res;
      }),
    );
    // All eight are with the render workers (rendering or queued for one) before the health check is sent.
    await vi.waitFor(() => expect(renderer().inFlight).toBe(8), { timeout: 60_000, interval: 5 });
    const health = await fetch(`${studio.url}/healthz`);
    expect(health.status).toBe(200);
    expect(finished).toEqual([]);

    for (const res of await Promise.all(bombs)) {
      expect(res.status).toBe(422);
      expect(res.body.error).toMatchObject({ code: 'validation_error', details: { template_id: aliceRewrite.id, stage: 'rewrite' } });
      expect(res.body.error.message).toContain('the rewrite template of “我的模板”');
      expect(res.body.error.details.fields.content).toBe(res.body.error.message);
    }
    // The studio renders on.
    const after = await alice.post(testUrl(aliceRewrite.id), { content: '[{{ original_text }}]', variables: { original_text: '灯塔' } });
    expect(after.body).toMatchObject({ rendered: '[灯塔]', error: null });
  }, 240_000);

  it("the issue's own bombs are refused for the memory they would take, and the studio lives on", async () => {
    const erin = await createUser(studio, admin, 'erin@example.com');
    const erinRewrite = (await rewriteOf(erin)).rewrite;
    for (const content of ISSUE_BOMBS) {
      const res = await erin.post(testUrl(erinRewrite.id), { content });
      expect(res.status, JSON.stringify(res.body)).toBe(422);
      expect(res.body.error.details).toMatchObject({ template_id: erinRewrite.id, limit: 'memory' });
    }
    expect((await fetch(`${studio.url}/healthz`)).status).toBe(200);
  }, 120_000);

  it('a run whose template is a bomb is refused with a 422 naming the template, the studio answering meanwhile, and nothing is written', async () => {
    const { set, rewrite } = await rewriteOf(bob);
    const projectId = await newProject(bob);
    expect((await bob.patch(`/api/v1/prompts/templates/${rewrite.id}/`, { content: `${BOMB}{{ original_text }}` })).status).toBe(200);
    expect((await bob.put(`/api/v1/projects/${projectId}/prompt-set/`, { prompt_set_id: set.id })).status).toBe(200);
    const before = await snapshot(studio.database);

    let done = false;
    const start = bob.post(`/api/v1/projects/${projectId}/stages/rewrite/runs/`, { input: {} }).then((res) => ((done = true), res));
    await vi.waitFor(() => expect(renderer().inFlight).toBe(1), { timeout: 60_000, interval: 5 });
    expect((await fetch(`${studio.url}/healthz`)).status).toBe(200);
    expect(done).toBe(false);

    const res = await start;
    expect(res.status).toBe(422);
    expect(res.body.error).toMatchObject({ code: 'validation_error', details: { template_id: rewrite.id, stage: 'rewrite' } });
    expect(res.body.error.message).toContain('the rewrite prompt template (version 2)');
    expect(await snapshot(studio.database)).toEqual(before);
  }, 120_000);

  it(`limits template tests per user (${TESTS_PER_MINUTE} a minute): the next answers 429, another user and run starts go on`, async () => {
    const carol = await createUser(studio, admin, 'carol@example.com');
    const dave = await createUser(studio, admin, 'dave@example.com');
    const carolRewrite = (await rewriteOf(carol)).rewrite;
    const shipped = (await dave.get('/api/v1/prompts/templates/?stage=rewrite')).body.results[0];
    for (let i = 0; i < TESTS_PER_MINUTE; i++) expect((await carol.post(testUrl(carolRewrite.id), {})).status).toBe(200);

    const limited = await carol.post(testUrl(carolRewrite.id), {});
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('rate_limited');
    // The shipped template as well: the limit is the user's, not the template's.
    expect((await carol.post(testUrl(shipped.id), {})).status).toBe(429);

    expect((await dave.post(testUrl(shipped.id), {})).status).toBe(200);
    const projectId = await newProject(carol);
    const run = await carol.post(`/api/v1/projects/${projectId}/stages/rewrite/runs/`, { input: {} });
    expect(run.status, JSON.stringify(run.body)).toBe(202);
    expect(run.body.prompt).toContain('一只猫在雨夜里寻找回家的路');
  }, 120_000);
});
