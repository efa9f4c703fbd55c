import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { STAGE_KEYS } from '@ai-story/contracts';
import { startFakeLlm } from '@ai-story/fake-llm';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ProjectRepository } from '../src/projects/repository.ts';
import { ProviderRepository } from '../src/providers/repository.ts';
import { RunRepository } from '../src/runs/repository.ts';
import { holdAccessReads } from './hold-access-reads.ts';
import { Client, createUser, endedRun, expectedRewrite, setupAdmin, startStudio, TEST_DB, type TestStudio } from './helpers.ts';
import { follow, followOpened, rebuild, terminal } from './sse-client.ts';

type Fake = Awaited<ReturnType<typeof startFakeLlm>>;

describe(`the run engine and the rewrite stage (${process.env.TEST_DB ?? 'pglite'})`, () => {
  let fake: Fake;
  let studio: TestStudio;
  let admin: Client;
  const providers: Record<string, string> = {};

  /** A provider whose model name selects the simulated upstream's pace and quirks. */
  const provider = async (label: string, model: string, extra: Record<string, unknown> = {}) => {
    const res = await admin.post('/api/v1/models/providers/', { name: label, api_url: fake.url, api_key: 'sk-test-key-0000', model_name: model, timeout_s: 5, ...extra });
    expect(res.status).toBe(201);
    providers[label] = res.body.id;
    return res.body.id as string;
  };

  const newProject = async (topic = '一只猫在雨夜里寻找回家的路 🐱🌧️，最后被小女孩收留。') =>
    (await admin.post('/api/v1/projects/', { name: 'Run test', original_topic: topic })).body.id as string;

  const startRun = async (projectId: string, providerLabel: string, input: Record<string, unknown> = {}) => {
    const res = await admin.post(`/api/v1/projects/${projectId}/stages/rewrite/runs/`, { input, provider_id: providers[providerLabel] });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body as { id: string; prompt: string; model: string };
  };

  const expectedFor = expectedRewrite;

  const events = (runId: string, opts: Parameters<typeof follow>[1] = {}) =>
    follow(`${studio.url}/api/v1/runs/${runId}/events`, { cookie: admin.cookie, ...opts });

  const waitFinished = (runId: string) => endedRun(admin, runId);

  /** The SQL of every statement sent while `action` runs. */
  const statementsDuring = async (action: () => Promise<unknown>) => {
    const sent: string[] = [];
    const stop = studio.database.onStatement((sql) => sent.push(sql));
    try {
      await action();
    } finally {
      stop();
    }
    return sent;
  };

  beforeAll(async () => {
    fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    studio = await startStudio({ heartbeatMs: 100 });
    admin = await setupAdmin(studio);
    await provider('fast', 'fake-model?ttft=20&tps=400&tokens=120');
    await provider('steady', 'fake-model?ttft=20&tps=60&tokens=90');
    await provider('slow', 'fake-model?ttft=20&tps=25&tokens=400');
  });
  afterAll(async () => {
    await studio?.close();
    await fake?.close();
  });

  it('streams deltas whose concatenation is exactly the expected text, Chinese and emoji included, and saves it', async () => {
    const projectId = await newProject();
    const run = await startRun(projectId, 'steady');
    const followed = await events(run.id);
    const expected = expectedFor(run);
    expect(expected).toMatch(/[\u4e00-\u9fff]/);
    expect(expected).toMatch(/\p{Extended_Pictographic}/u);
    expect(followed.text).toBe(expected);
    const tokens = followed.events.filter((e) => e.data.type === 'token');
    expect(tokens.length).toBeGreaterThan(3);
    expect(tokens.every((e) => Object.keys(e.data).sort().join() === 'content,type')).toBe(true); // deltas only
    const ids = followed.events.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length);
    const done = followed.events.at(-1)!.data;
    expect(done.type).toBe('done');
    expect(done.full_text).toBe(expected);
    expect(done.run.status).toBe('completed');

    const stage = (await admin.get(`/api/v1/projects/${projectId}/stages/`)).body.find((s: any) => s.stage_type === 'rewrite');
    expect(stage.status).toBe('completed');
    expect(stage.output.rewritten_text).toBe(expected.trim()); // the saved script is trimmed of edge whitespace
    expect(stage.output.original_text).toContain('一只猫');
    const saved = (await admin.get(`/api/v1/runs/${run.id}/`)).body;
    expect(saved.prompt).toContain('一只猫');
    expect(saved.usage.completion_tokens).toBeGreaterThan(0);
  });

  it('sends the SSE headers, a retry hint and heartbeats', async () => {
    const projectId = await newProject();
    const run = await startRun(projectId, 'slow', { target_length: 100 });
    const res = await events(run.id, { stopWhen: (ev) => ev.length > 0 && Date.now() > 0 && ev.filter((e) => e.data.type === 'token').length > 8 });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('cache-control')).toMatch(/no-cache/);
    expect(res.headers.get('x-accel-buffering')).toBe('no');
    expect(res.headers.get('content-encoding')).toBeNull();
    expect(res.comments).toContain('heartbeat');
    await admin.post(`/api/v1/runs/${run.id}/cancel/`);
  });

  it("opens a live run's stream in one socket write, head and catch-up together, and ends it in one, the last event with the body's end", async () => {
    const projectId = await newProject();
    // The stream opens while the run waits for its first token, so the catch-up is the run's first events.
    await provider('opens late', 'fake-model?ttft=300&tps=1000&tokens=3');
    const run = await startRun(projectId, 'opens late');
    const writes: string[] = [];
    let watched: (Socket & { _write: Function; _writev: Function }) | undefined;
    const onRequest = (req: IncomingMessage) => {
      if (!req.url?.startsWith(`/api/v1/runs/${run.id}/events`)) return;
      // What the socket hands the kernel: one `_write` or `_writev` is one system call.
      const socket = (watched = req.socket as NonNullable<typeof watched>);
      const [write, writev] = [socket._write, socket._writev];
      socket._write = function (chunk: Buffer, ...rest: unknown[]) {
        writes.push(String(chunk));
        return write.call(this, chunk, ...rest);
      };
      socket._writev = function (chunks: { chunk: Buffer }[], ...rest: unknown[]) {
        writes.push(chunks.map((c) => String(c.chunk)).join(''));
        return writev.call(this, chunks, ...rest);
      };
    };
    studio.app.server.on('request', onRequest);
    try {
      const res = await events(run.id);
      expect(res.events.at(-1)?.data.type).toBe('done');
    } finally {
      studio.app.server.off('request', onRequest);
      // The connection is kept alive for later tests: its socket writes as before (the prototype's own).
      for (const own of ['_write', '_writev']) if (watched) Reflect.deleteProperty(watched, own);
    }
    expect(writes[0]).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*retry: 2000[\s\S]*"type":"stage_update"/);
    expect(writes.at(-1)).toMatch(/"type":"done"[\s\S]*\r\n0\r\n\r\n$/);
  });

  it('rebuilds exactly the expected text from a reconnect with Last-Event-ID at every cut point', async () => {
    const projectId = await newProject('雪山上的灯塔守护者 ⛰️ 与一只迷路的信鸽');
    const run = await startRun(projectId, 'steady');
    // Every event as it is sent, followed from the start (a newcomer would get the text so far as one
    // token; Last-Event-ID 0 means "I have nothing"). Once the run has ended, its log merges its tokens:
    // a cut inside them starts over from the saved run; every cut must still rebuild the exact text.
    const full = await events(run.id, { lastEventId: 0 });
    const expected = expectedFor(run);
    expect(full.text).toBe(expected);
    expect(full.events.filter((e) => e.data.type === 'token').length).toBeGreaterThan(3);
    expect((await events(run.id)).text).toBe(expected);
    const lastId = full.events.at(-1)!.id;
    for (let cut = 0; cut < lastId; cut++) {
      const before = rebuild(full.events.filter((e) => e.id <= cut).map((e) => e.data));
      const resumed = await events(run.id, { lastEventId: cut });
      expect(resumed.events[0].id).toBeGreaterThan(cut);
      expect(rebuild(resumed.events.map((e) => e.data), before)).toBe(expected);
      expect(resumed.events.filter(terminal)).toHaveLength(1);
    }
    const afterTerminal = await events(run.id, { lastEventId: lastId });
    expect(afterTerminal.status).toBe(204);
  });

  it('resumes live: a client that drops mid-run and reconnects gets no gap and no duplicate', async () => {
    const projectId = await newProject();
    const run = await startRun(projectId, 'steady');
    let text = '';
    let lastId: number | undefined;
    for (let hop = 0; hop < 500; hop++) {
      const part = await events(run.id, { lastEventId: lastId, stopWhen: (ev) => ev.filter((e) => e.data.type === 'token').length >= 3 || ev.some(terminal) });
      if (part.status === 204) break;
      text = rebuild(part.events.map((e) => e.data), text);
      lastId = part.events.at(-1)?.id ?? lastId;
      if (part.events.some(terminal)) break;
    }
    expect(text).toBe(expectedFor(run));
  });

  it('gives a late joiner the text so far, then the live tail', async () => {
    const projectId = await newProject();
    const run = await startRun(projectId, 'steady');
    await events(run.id, { stopWhen: (ev) => ev.filter((e) => e.data.type === 'token').length >= 10 });
    const late = await events(run.id);
    expect(late.text).toBe(expectedFor(run));
    const projectStream = await follow(`${studio.url}/api/v1/projects/${projectId}/events`, { cookie: admin.cookie, stopWhen: (ev) => ev.some((e) => e.data.type === 'project_update') });
    expect(projectStream.events[0].data.type).toBe('project_update');
  });

  // An id no log gave (a made-up one, or one of a project log since dropped or of a previous process).
  const BEYOND_THE_TIP = 9_000_000_000_000_000;

  it('starts a client over whose Last-Event-ID is beyond the run log: a reset, the whole text, then the live tail', async () => {
    const projectId = await newProject();
    const run = await startRun(projectId, 'slow');
    await events(run.id, { stopWhen: (ev) => ev.filter((e) => e.data.type === 'token').length >= 3 });
    const resumed = await events(run.id, { lastEventId: BEYOND_THE_TIP });
    expect(resumed.status).toBe(200);
    expect(resumed.events[0].data).toMatchObject({ type: 'reset', run_id: run.id, stage: 'rewrite' });
    expect(resumed.events[1].data.type).not.toBe('reset');
    expect(resumed.text).toBe(expectedFor(run));
    expect(resumed.events.filter(terminal)).toHaveLength(1);
    // Finished, the run still starts over such a client (an id past the terminal is not the terminal).
    const late = await events(run.id, { lastEventId: BEYOND_THE_TIP });
    expect(late.events[0].data.type).toBe('reset');
    expect(late.text).toBe(expectedFor(run));
   }, 90_000);

  it('catches up a project stream client whose Last-Event-ID is beyond the project log: a reset per active run, its text so far, then the tail', async () => {
    const projectId = await newProject();
    const run = await startRun(projectId, 'slow');
    await events(run.id, { stopWhen: (ev) => ev.filter((e) => e.data.type === 'token').length >= 3 });
    const stream = await follow(`${studio.url}/api/v1/projects/${projectId}/events`, {
      cookie: admin.cookie,
      lastEventId: BEYOND_THE_TIP,
      stopWhen: (ev) => ev.some((e) => e.data.type === 'project_update'),
    });
    expect(stream.events.map((e) => e.data.type).slice(0, 3)).toEqual(['reset', 'stage_update', 'token']);
    expect(stream.events[0].data).toMatchObject({ run_id: run.id, stage: 'rewrite' });
    expect(stream.events[2].data.content.length).toBeGreaterThan(0);
    expect(expectedFor(run).startsWith(stream.text)).toBe(true);
    // The ids it gets from here on are the log's own, and a resume from them is exact again.
    const lastId = stream.events.at(-1)!.id;
    expect(lastId).toBeLessThan(BEYOND_THE_TIP);
    const resumed = await follow(`${studio.url}/api/v1/projects/${projectId}/events`, { cookie: admin.cookie, lastEventId: lastId, stopWhen: (ev) => ev.some((e) => e.data.type === 'token') });
    expect(resumed.events.some((e) => e.data.type === 'reset')).toBe(false);
    expect(resumed.events[0].id).toBeGreaterThan(lastId);
    await admin.post(`/api/v1/runs/${run.id}/cancel/`);
   }, 90_000);

  it('finishes and saves a run whose client disconnected mid-run', async () => {
    const projectId = await newProject();
    const run = await startRun(projectId, 'steady');
    const partial = await events(run.id, { stopWhen: (ev) => ev.filter((e) => e.data.type === 'token').length >= 2 });
    expect(partial.ended).toBe('aborted');
    const finished = await waitFinished(run.id);
    expect(finished.status).toBe('completed');
    expect(finished.text).toBe(expectedFor(run));
  });

  it('cancels on request, keeps the partial text and ends the stream with stage_update cancelled', async () => {
    const projectId = await newProject();
    const run = await startRun(projectId, 'slow');
    const watcher = events(run.id);
    await events(run.id, { stopWhen: (ev) => ev.filter((e) => e.data.type === 'token').length >= 5 });
    const cancelled = await admin.post(`/api/v1/runs/${run.id}/cancel/`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe('cancelled');
    const partial = cancelled.body.text as string;
    expect(partial.length).toBeGreaterThan(0);
    expect(expectedFor(run).startsWith(partial)).toBe(true);
    expect(partial.length).toBeLessThan(expectedFor(run).length);
    const seen = await watcher;
    expect(seen.events.at(-1)!.data).toMatchObject({ type: 'stage_update', status: 'cancelled' });
    expect(seen.text).toBe(partial);
    const stage = (await admin.get(`/api/v1/projects/${projectId}/stages/`)).body[0];
    expect(stage.status).toBe('cancelled');
  });

  it("derives the project's status at a run's ending as everywhere: a last stage whose saved output is JSON null is not done", async () => {
    for (const [exportOutput, status] of [['{"video_url": "/media/final.mp4"}', 'completed'], ['null', 'draft']] as const) {
      const projectId = await newProject();
      // Every stage has a result; the export's is the one given.
      await studio.database.db.execute(
        sql`update project_stages set status = 'completed', output = case when stage_type = 'export' then ${exportOutput}::jsonb else '{"done": true}'::jsonb end where project_id = ${projectId}`,
      );
      const run = await startRun(projectId, 'slow');
      await admin.post(`/api/v1/runs/${run.id}/cancel/`);
      expect((await admin.get(`/api/v1/projects/${projectId}/`)).body.status, exportOutput).toBe(status);
    }
  });

  it('answers a second start of the same stage with 409 and the active run id', async () => {
    const projectId = await newProject();
    const run = await startRun(projectId, 'slow');
    const second = await admin.post(`/api/v1/projects/${projectId}/stages/rewrite/runs/`, { input: {}, provider_id: providers.fast });
    expect(second.status).toBe(409);
    expect(second.body.error).toMatchObject({ code: 'conflict', details: { active_run_id: run.id } });
    await admin.post(`/api/v1/runs/${run.id}/cancel/`);
  });

  /** Holds every run insert until `release` (the database is slow to save a start). */
  const holdInserts = () => {
    const insertActive = RunRepository.prototype.insertActive;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const spy = vi.spyOn(RunRepository.prototype, 'insertActive').mockImplementation(async function (this: RunRepository, values) {
      await held;
      return insertActive.call(this, values);
    });
    return {
      release,
      restore: () => {
        release();
        spy.mockRestore();
      },
    };
  };

  it('asks the model while the run is being saved, and keeps every token that came before the run was live', async () => {
    const projectId = await newProject();
    await provider('early', 'fake-model?ttft=0&tps=400&tokens=40');
    const { stats } = fake.handler;
    const before = { requests: stats.requests, completed: stats.completed };
    const inserts = holdInserts();
    try {
      const started = startRun(projectId, 'early');
      // The whole answer streams while the run's insert waits.
      await vi.waitFor(() => expect(stats.completed).toBe(before.completed + 1), { timeout: 10_000, interval: 10 });
      expect(stats.requests).toBe(before.requests + 1);
      inserts.release();
      const run = await started;
      const followed = await events(run.id);
      expect(followed.events.at(-1)!.data.type).toBe('done');
      expect(followed.text).toBe(expectedFor(run));
      const saved = (await admin.get(`/api/v1/runs/${run.id}/`)).body;
      expect(saved).toMatchObject({ status: 'completed', text: expectedFor(run) });
      expect((await admin.get(`/api/v1/models/providers/${providers.early}/usage`)).body.totals).toMatchObject({ calls: 1, completion_tokens: 40 });
    } finally {
      inserts.restore();
    }
  });

  it('cancels the call a start sent when the stage turns out to be running already: 409, and nothing of it kept', async () => {
    const projectId = await newProject();
    await provider('raced', 'fake-model?ttft=20&tps=25&tokens=400');
    const { stats } = fake.handler;
    const before = { requests: stats.requests, closed: stats.client_closed };
    const inserts = holdInserts();
    try {
      // Both starts pass the active-run check before either is saved; the stage's unique index decides.
      const starts = [0, 1].map(() => admin.post(`/api/v1/projects/${projectId}/stages/rewrite/runs/`, { input: {}, provider_id: providers.raced }));
      await vi.waitFor(() => expect(stats.requests).toBe(before.requests + 2), { timeout: 10_000, interval: 10 });
      inserts.release();
      const answers = await Promise.all(starts);
      expect(answers.map((a) => a.status).sort()).toEqual([202, 409]);
      const winner = answers.find((a) => a.status === 202)!.body as { id: string };
      expect(answers.find((a) => a.status === 409)!.body.error).toMatchObject({ code: 'conflict', details: { active_run_id: winner.id } });
      // The loser's call is closed at once; the winner's goes on.
      await vi.waitFor(() => expect(stats.client_closed).toBe(before.closed + 1), { timeout: 10_000, interval: 10 });
      expect((await admin.get(`/api/v1/runs/${winner.id}/`)).body.status).toBe('running');
      await admin.post(`/api/v1/runs/${winner.id}/cancel/`);
      const history = (await admin.get(`/api/v1/projects/${projectId}/stages/rewrite/runs/`)).body;
      expect(history.results.map((r: { id: string }) => r.id)).toEqual([winner.id]);
      expect((await admin.get(`/api/v1/models/providers/${providers.raced}/usage`)).body.totals).toMatchObject({ calls: 1 });
    } finally {
      inserts.restore();
    }
  });

  it.skipIf(TEST_DB !== 'postgres')("locks the project's row before its stage's when a run starts, the order an ending keeps (PostgreSQL)", async () => {
    const projectId = await newProject();
    await provider('ordered', 'fake-model?ttft=0&tps=400&tokens=5');
    const holder = postgres(studio.testDb.location.databaseUrl!, { max: 1 });
    const other = postgres(studio.testDb.location.databaseUrl!, { max: 1 });
    try {
      let start!: ReturnType<typeof startRun>;
      // Another transaction (an ending, say) holds the project's row until its body ends.
      await holder.begin(async (tx) => {
        await tx`select 1 from projects where id = ${projectId} for no key update`;
        start = startRun(projectId, 'ordered');
        // The start waits for that lock...
        await vi.waitFor(
          async () => {
            const [{ n }] = await other`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`;
            expect(n).toBeGreaterThan(0);
          },
          { timeout: 10_000, interval: 20 },
        );
        // ...holding nothing of the stage's row: an ending that holds the project can still take it.
        const stage = await other`select id from project_stages where project_id = ${projectId} and stage_type = 'rewrite' for update nowait`;
        expect(stage).toHaveLength(1);
      });
      const run = await start;
      expect((await events(run.id)).text).toBe(expectedFor(run));
    } finally {
      await Promise.all([holder.end(), other.end()]);
    }
  });

  it('answers 404 when the project is deleted while its start is being saved, and closes the call the start sent', async () => {
    const projectId = await newProject();
    await provider('orphaned', 'fake-model?ttft=20&tps=25&tokens=400');
    const { stats } = fake.handler;
    const before = { requests: stats.requests, closed: stats.client_closed };
    const inserts = holdInserts();
    try {
      const start = admin.post(`/api/v1/projects/${projectId}/stages/rewrite/runs/`, { input: {}, provider_id: providers.orphaned });
      await vi.waitFor(() => expect(stats.requests).toBe(before.requests + 1), { timeout: 10_000, interval: 10 });
      expect((await admin.delete(`/api/v1/projects/${projectId}/`)).status).toBe(204);
      inserts.release();
      const answer = await start;
      expect(answer.status).toBe(404);
      expect(answer.body.error).toMatchObject({ code: 'not_found' });
      await vi.waitFor(() => expect(stats.client_closed).toBe(before.closed + 1), { timeout: 10_000, interval: 10 });
      const [{ n }] = (await studio.database.db.execute(sql`select count(*)::int as n from stage_runs where project_id = ${projectId}`)) as unknown as { n: number }[];
      expect(n).toBe(0);
    } finally {
      inserts.restore();
    }
  });

  /** Opens a run's stream until its first event: the answer's status, and how many reads of the run (with the reader's access) it took. */
  const followReads = async (client: Client, runId: string) => {
    let status = 0;
    const sent = await statementsDuring(async () => {
      status = (await follow(`${studio.url}/api/v1/runs/${runId}/events`, { cookie: client.cookie, stopWhen: (e) => e.length >= 1 })).status;
    });
    return { status, reads: sent.filter((s) => /stage_runs/.test(s) && /project_members/.test(s)).length };
  };

  it("lets a run's starter follow it right after the start without reading it again; anyone else is read and checked, and so is the starter once a member was removed", async () => {
    const projectId = await newProject();
    const email = `starter-${randomUUID()}@example.com`;
    const member = await createUser(studio, admin, email);
    expect((await admin.post(`/api/v1/projects/${projectId}/members/`, { email, role: 'editor' })).status).toBe(202);
    const started = await member.post(`/api/v1/projects/${projectId}/stages/rewrite/runs/`, { input: {}, provider_id: providers.slow });
    expect(started.status).toBe(202);
    const runId = started.body.id as string;
    try {
      expect(await followReads(member, runId)).toEqual({ status: 200, reads: 0 });
      expect(await followReads(admin, runId)).toEqual({ status: 200, reads: 1 });
      expect((await admin.request('DELETE', `/api/v1/projects/${projectId}/members/${member.id}/`)).status).toBe(204);
      expect(await followReads(member, runId)).toEqual({ status: 404, reads: 1 });
    } finally {
      await admin.post(`/api/v1/runs/${runId}/cancel/`);
    }
  });

  it('keeps the history of runs, saves a hand edit as a version, and restores an older run', async () => {
    const projectId = await newProject();
    const first = await startRun(projectId, 'fast');
    await events(first.id);
    const edit = await admin.patch(`/api/v1/projects/${projectId}/stages/rewrite/`, { output: { rewritten_text: '手写的新版本' } });
    expect(edit.status).toBe(200);
    expect(edit.body.source).toBe('edit');
    let stage = (await admin.get(`/api/v1/projects/${projectId}/stages/`)).body[0];
    expect(stage.output.rewritten_text).toBe('手写的新版本');
    const history = (await admin.get(`/api/v1/projects/${projectId}/stages/rewrite/runs/`)).body;
    expect(history.count).toBe(2);
    expect(history.results[0].source).toBe('edit');
    const restored = await admin.post(`/api/v1/runs/${first.id}/restore/`);
    expect(restored.status).toBe(200);
    stage = (await admin.get(`/api/v1/projects/${projectId}/stages/`)).body[0];
    expect(stage.output.rewritten_text).toBe(expectedFor(first));
    expect((await admin.patch(`/api/v1/projects/${projectId}/stages/rewrite/`, { output: { rewritten_text: '' } })).status).toBe(400);
  });

  it('serves the seed endpoint: start and stream in one response, the first event naming the run', async () => {
    const projectId = await newProject();
    const sent: string[] = [];
    const stop = studio.database.onStatement((sql) => sent.push(sql));
    const res = await follow(`${studio.url}/api/v1/projects/${projectId}/rewrite-stream/`, {
      cookie: admin.cookie,
      method: 'POST',
      body: { original_text: '小镇上的最后一家书店 📚', style: 'emotional', provider_id: providers.fast },
    }).finally(stop);
    expect(res.status).toBe(200);
    // The run it has just started is not read back to be followed: the start checked the access.
    expect(sent.filter((sql) => sql.startsWith('select "stage_runs"."id"'))).toEqual([]);
    const first = res.events[0].data;
    expect(first).toMatchObject({ type: 'stage_update', status: 'running' });
    const run = (await admin.get(`/api/v1/runs/${first.run_id}/`)).body;
    expect(res.text).toBe(expectedFor(run));
    expect(run.input.style).toBe('emotional');
    expect(res.events.map((e) => e.data.type)).toEqual(expect.arrayContaining(['stage_update', 'info', 'token', 'done']));
  });

  it.each([
    ['a cut connection after the first token', 'cut_mid_stream', 'network'],
    ['an error object inside the stream', 'stream_error', 'stream_error'],
    ['a body that ends without [DONE]', 'no_done', 'truncated'],
    ['a stall with no bytes', 'stall', 'timeout'],
    ['a wrong key', 'bad_key', 'auth'],
    ['an unknown model', 'model_not_found', 'not_found'],
  ])('ends the run failed with a clear error event on %s, and never saves broken output', async (_label, quirk, code) => {
    const projectId = await newProject();
    const good = await startRun(projectId, 'fast');
    await events(good.id);
    const before = (await admin.get(`/api/v1/projects/${projectId}/stages/`)).body[0].output;
    const id = await provider(`fault-${quirk}`, `fake-model?ttft=10&tps=200&tokens=60&after=5&quirk=${quirk}`, { timeout_s: 1 });
    const res = await admin.post(`/api/v1/projects/${projectId}/stages/rewrite/runs/`, { input: {}, provider_id: id });
    expect(res.status).toBe(202);
    const seen = await events(res.body.id);
    const last = seen.events.at(-1)!.data;
    expect(last.type).toBe('error');
    expect(last.code).toBe(code);
    expect(last.message.length).toBeGreaterThan(5);
    expect(last.message).not.toContain('sk-test-key');
    const run = (await admin.get(`/api/v1/runs/${res.body.id}/`)).body;
    expect(run.status).toBe('failed');
    expect(run.output).toBeNull();
    const stage = (await admin.get(`/api/v1/projects/${projectId}/stages/`)).body[0];
    expect(stage.status).toBe('failed');
    expect(stage.output).toEqual(before);
  });

  it('retries a 429 and a 5xx before the first token and then completes', async () => {
    const projectId = await newProject();
    for (const quirk of ['http_429', 'http_503']) {
      const id = await provider(`retry-${quirk}`, `fake-model?ttft=10&tps=300&tokens=40&quirk=${quirk}&fail_times=1&retry_after=0`);
      const res = await admin.post(`/api/v1/projects/${projectId}/stages/rewrite/runs/`, { input: {}, provider_id: id });
      const seen = await events(res.body.id);
      expect(seen.events.at(-1)!.data.type).toBe('done');
      expect(seen.text).toBe(expectedFor(res.body));
    }
  });

  it('does not write to the database per token', async () => {
    const projectId = await newProject();
    await provider('short-2s', 'fake-model?ttft=10&tps=50&tokens=100');
    await provider('long-2s', 'fake-model?ttft=10&tps=500&tokens=1000');
    const writesFor = async (label: string) => {
      const before = studio.database.stats.writes;
      const run = await startRun(projectId, label);
      const seen = await events(run.id);
      expect(seen.events.at(-1)!.data.type).toBe('done');
      return { writes: studio.database.stats.writes - before, tokens: seen.events.filter((e) => e.data.type === 'token').length };
    };
    const short = await writesFor('short-2s');
    const long = await writesFor('long-2s');
    // Same duration, ten times the tokens: the same number of writes (checkpoints are per second).
    expect(long.writes).toBeLessThanOrEqual(short.writes + 1);
    expect(long.writes).toBeLessThan(20);
  });

  it('starts and finishes a run in a handful of statements', async () => {
    const projectId = await newProject();
    // A first token long after the start answers, and fewer tokens than a checkpoint would save.
    await provider('counted', 'fake-model?ttft=300&tps=400&tokens=20');
    await startRun(projectId, 'counted').then((r) => events(r.id)); // warms what is cached between runs
    const sent: string[] = [];
    const stop = studio.database.onStatement((sql) => sent.push(sql));
    try {
      const run = await startRun(projectId, 'counted');
      const start = sent.splice(0);
      const streamed = events(run.id);
      await studio.app.services.runs.activeRun(run.id)?.finished;
      // The checkpoint clock may tick during a slow run (and the end then folds the checkpoints away):
      // those statements follow the clock, not the start or the finish.
      const finish = sent.splice(0).filter((sql) => !/"run_text_chunks"/.test(sql));
      expect((await admin.get(`/api/v1/runs/${run.id}/`)).body.status).toBe('completed');
      // Access, stages and the active-run check (a rewrite reads no shots); then the project's status,
      // the run and its stage in one transaction. The request's credential, the provider list and the
      // prompt template are remembered between starts for a few seconds (and dropped on a write).
      expect(start.length, start.join('\n')).toBeLessThanOrEqual(4);
      // Those three leave together, in the order that keeps the lock order (project, then stage).
      const written = start.map((sql) => sql.match(/^(update|insert into) "(\w+)"/)?.[2]).filter(Boolean);
      expect(written).toEqual(['projects', 'stage_runs', 'project_stages']);
      // The usage row; then in one transaction the project locked, one statement for the run, its stage
      // and the stages after it, and the project's status (the pipeline, idle at the end, needs no look of its own).
      expect(finish.length, finish.join('\n')).toBeLessThanOrEqual(4);
      // They leave together in the lock order (project, run, stage), the status last, settled from what the
      // ending saved: no stage is read back (a finished project's outputs are tens of kilobytes).
      const finishing = finish
        .map((sql) => (/^select\b.* from "projects" .*for no key update/.test(sql) ? 'lock' : /^with "run" as \(update "stage_runs"/.test(sql) ? 'run and stage' : sql.match(/^(select|update)\b.*?"(\w+)"/)?.slice(1).join(' ')))
        .filter(Boolean);
      expect(finishing.slice(finishing.indexOf('lock'))).toEqual(['lock', 'run and stage', 'update projects']);
      // Nor are the texts a start and an ending send read back: the input and prompt (the user's text), the run's text and output.
      const returned = [...start, ...finish].filter((sql) => /^(with "run" as \()?(insert into|update) "stage_runs"/.test(sql)).map((sql) => sql.split(' returning ')[1].split(')')[0]);
      expect(returned).toHaveLength(2);
      for (const columns of returned) expect(columns).not.toMatch(/"(input|prompt|text|output)"/);
      // The run the ending tells its followers of is the saved one all the same.
      const saved = (await admin.get(`/api/v1/runs/${run.id}/`)).body;
      const done = (await streamed).events.at(-1)!.data as { type: string; output: unknown; run: Record<string, unknown> };
      expect(done.type).toBe('done');
      expect(done.output).toEqual(saved.output);
      expect(done.run).toEqual({ ...saved, text: '', output: null, prompt: null });
    } finally {
      stop();
    }
  });

  it("tells a project's followers of a run's start and ending without reading any stage's output", async () => {
    const projectId = await newProject();
    await studio.database.db.execute(sql`update project_stages set output = '{"shots": []}'::jsonb, status = 'completed' where project_id = ${projectId} and stage_type = 'storyboard'`);
    const updates = <E extends { data: { type: string } }>(ev: E[]) => ev.filter((e) => e.data.type === 'project_update');
    // The update a follower opens with, then the start's and the ending's.
    const { opened, result } = followOpened(`${studio.url}/api/v1/projects/${projectId}/events`, { cookie: admin.cookie, stopWhen: (ev) => updates(ev).length >= 3 });
    await opened;
    const sent = await statementsDuring(async () => waitFinished((await startRun(projectId, 'fast')).id));
    const told = updates((await result).events).map((e) => e.data as { status: string; stages: { stage_type: string; status: string; stale: boolean }[] });
    expect(told.at(-1)!.status).toBe('draft');
    expect(told.at(-1)!.stages.slice(0, 2)).toMatchObject([
      { stage_type: 'rewrite', status: 'completed', stale: false },
      { stage_type: 'storyboard', status: 'completed', stale: true },
    ]);
    expect(told.at(-2)!.status).toBe('processing');
    // The start fetches the outputs its stage reads (a rewrite's: none), named as such; nothing selects one whole.
    const outputsRead = sent.filter((q) => /^select\b/.test(q) && /(select |, )"output"(,| from)/.test(q));
    expect(outputsRead, outputsRead.join('\n')).toEqual([]);
    // Nobody's access changed meanwhile: the open streams do not re-check their readers at each change.
    const rechecks = sent.filter((q) => /^select "projects"\."owner_id", "project_members"\."role" from/.test(q));
    expect(rechecks, rechecks.join('\n')).toEqual([]);
  });

  it("opens a project's stream asking for its reader's access and its runs in progress at once", async () => {
    const projectId = await newProject();
    const run = await startRun(projectId, 'fast');
    const reads = holdAccessReads();
    const sent: string[] = [];
    const stop = studio.database.onStatement((q) => sent.push(q));
    try {
      const { opened, result } = followOpened(`${studio.url}/api/v1/projects/${projectId}/events`, { cookie: admin.cookie, stopWhen: (ev) => ev.some((e) => e.data.type === 'project_update') });
      await reads.read;
      // The access read has answered and is held: the runs in progress were asked for beside it, not after it.
      expect(sent.filter((q) => /^select\b.* from "stage_runs" where/.test(q) && /"project_id"/.test(q))).toHaveLength(1);
      reads.release();
      await opened;
      expect((await result).events.some((e) => e.data.type === 'project_update')).toBe(true);
    } finally {
      stop();
      reads.restore();
      await waitFinished(run.id);
    }
  });

  it("fetches at a start only the outputs its stage reads, and a stage reading another's is told so at once", async () => {
    const projectId = await newProject();
    await studio.database.db.execute(sql`update project_stages set output = jsonb_build_object('of', stage_type) where project_id = ${projectId}`);
    const [{ owner_id: ownerId }] = (await studio.database.db.execute(sql`select owner_id from projects where id = ${projectId}`)) as unknown as { owner_id: string }[];
    const found = await new ProjectRepository(studio.database.db).findForRun(projectId, ownerId, 'storyboard', ['rewrite']);
    expect(found?.project.id).toBe(projectId);
    expect(found!.stages.map((s) => s.stageType)).toEqual([...STAGE_KEYS]);
    const of = (stage: string) => found!.stages.find((s) => s.stageType === stage)!;
    expect(of('rewrite').output).toEqual({ of: 'rewrite' });
    expect(of('camera').status).toBe('pending');
    expect(() => of('camera').output).toThrow("The storyboard stage reads the camera stage's output: add 'camera' to its `reads`");
  });

  it("looks up a stage's active run through its partial index, also in the plan the database caches", async () => {
    const projectId = await newProject();
    await provider('planned', 'fake-model?ttft=10&tps=400&tokens=5');
    const sent = await statementsDuring(async () => {
      await waitFinished((await startRun(projectId, 'planned')).id);
      // The other reads of active runs: a refused start's, and the pipeline's and the streams'.
      const runs = new RunRepository(studio.database.db);
      await runs.findActive(projectId, 'rewrite');
      await runs.activeOfProject(projectId);
    });
    const lookups = [...new Set(sent.filter((q) => /(from|join) "stage_runs"/.test(q) && /"project_id" = /.test(q) && /"status" in /.test(q)))];
    // The start's access check, and the two reads above.
    expect(lookups.length, sent.join('\n')).toBe(3);
    for (const query of lookups) {
      // A prepared statement runs on a generic plan after a few executions: one made without its
      // values. Only a predicate written as the index's own lets that plan use the partial index.
      const params = Math.max(0, ...[...query.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
      const plan = await studio.database.db.transaction(async (tx) => {
        await tx.execute(sql.raw(`set local plan_cache_mode = force_generic_plan`));
        await tx.execute(sql.raw(`prepare active_lookup as ${query}`));
        const rows: any = await tx.execute(sql.raw(`explain execute active_lookup(${Array(params).fill('null').join(', ')})`));
        await tx.execute(sql.raw(`deallocate active_lookup`));
        return (rows.rows ?? rows).map((r: Record<string, string>) => r['QUERY PLAN']).join('\n');
      });
      expect(plan, query).toContain('stage_runs_one_active_uq');
    }
  });

  // PostgreSQL only: the embedded database runs one transaction at a time, so no other one can hold the lock meanwhile.
  it('saves nothing of a run no longer active at its ending, shots its stage wrote included', async () => {
    const projectId = await newProject();
    // The engine's own run waits for its first token meanwhile; the test ends it through the repository.
    await provider('recovered', 'fake-model?ttft=30000&tokens=3');
    const repo = new RunRepository(studio.database.db);
    const run = await startRun(projectId, 'recovered');
    // Another studio recovered the run meanwhile (this one's lease had run out): interrupted, and its stage with it.
    await studio.database.db.execute(sql`update stage_runs set status = 'interrupted', finished_at = now() where id = ${run.id}`);
    await studio.database.db.execute(sql`update project_stages set status = 'interrupted' where current_run_id = ${run.id}`);
    const target = { id: run.id, projectId, stage: 'rewrite' as const, checkpointed: false };
    // An ending whose stage saves nothing else goes out with its COMMIT; one whose stage wrote shots waits for the run's answer and is undone.
    expect((await repo.completeRun(target, { text: 'late', usage: null, lastEventId: 1 }, async () => ({ text: 'late' }))).ending).toBeNull();
    const shots = [{ scene_description: 'a harbour at dawn', narration_text: 'It began here.', image_prompt: 'harbour, dawn', duration_seconds: 3 }];
    expect((await repo.completeRun(target, { text: 'late', usage: null, lastEventId: 1 }, (store) => store.storyboards.replaceShots(projectId, shots))).ending).toBeNull();
    expect(await repo.endRun(target, { status: 'failed', text: 'late', reason: 'test', lastEventId: 1 })).toBeNull();
    const row = (await admin.get(`/api/v1/runs/${run.id}/`)).body;
    expect(row.status).toBe('interrupted');
    expect(row.text).not.toBe('late');
    const stage = (await admin.get(`/api/v1/projects/${projectId}/stages/`)).body.find((s: { stage_type: string }) => s.stage_type === 'rewrite');
    expect(stage).toMatchObject({ status: 'interrupted', output: null });
    const [{ n }] = (await studio.database.db.execute(sql`select count(*)::int as n from storyboard_shots where project_id = ${projectId}`)) as unknown as { n: number }[];
    expect(n).toBe(0);
    // The status follows what is there: the recovered run's stage failed the project.
    expect((await admin.get(`/api/v1/projects/${projectId}/`)).body.status).toBe('failed');
    const live = studio.app.services.runs.activeRun(run.id);
    live?.abort.abort();
    await live?.finished;
    expect((await admin.get(`/api/v1/runs/${run.id}/`)).body.status).toBe('interrupted');
  });

  it.skipIf(TEST_DB !== 'postgres')("sends a run's ending behind the project's lock without waiting for it, and still writes under it", async () => {
    const projectId = await newProject();
    // The engine's own run waits for its first token meanwhile; the test ends it through the repository.
    await provider('locked end', 'fake-model?ttft=30000&tokens=3');
    const repo = new RunRepository(studio.database.db);
    for (const ending of ['failed', 'completed'] as const) {
      const run = await startRun(projectId, 'locked end');
      let release!: () => void;
      let locked!: () => void;
      const isLocked = new Promise<void>((resolve) => (locked = resolve));
      // Another transaction (another run of the project ending) holds the project's row.
      const holder = studio.database.db.transaction(async (tx) => {
        await tx.execute(sql`select id from projects where id = ${projectId} for no key update`);
        locked();
        await new Promise<void>((resolve) => (release = resolve));
      });
      await isLocked;
      const sent: string[] = [];
      const stop = studio.database.onStatement((q) => sent.push(q));
      const target = { id: run.id, projectId, stage: 'rewrite' as const, checkpointed: false };
      const saved =
        ending === 'failed'
          ? repo.endRun(target, { status: 'failed', text: 'partial', reason: 'test', lastEventId: 1 })
          : repo.completeRun(target, { text: 'whole', usage: null, lastEventId: 1 }, async () => ({ text: 'whole' })).then((c) => c.ending);
      try {
        // The run's and the stage's updates are on their way while the lock is still held elsewhere.
        await vi.waitFor(() => expect(sent.some((q) => /^update "projects"/.test(q))).toBe(true));
        const order = sent.map((q) => (/^select .* from "projects" .*for no key update/.test(q) ? 'lock' : /^with "run" as \(update "stage_runs"/.test(q) ? 'run and stage' : q.match(/^update "(projects)"/)?.[1])).filter(Boolean);
        expect(order, sent.join('\n')).toEqual(['lock', 'run and stage', 'projects']);
      } finally {
        stop();
        release();
      }
      await holder;
      expect((await saved)?.pipeline).toBe('idle');
      // The engine's own ending of the run, once stopped, finds it ended already and leaves it so.
      const live = studio.app.services.runs.activeRun(run.id);
      live?.abort.abort();
      await live?.finished;
      const row = (await admin.get(`/api/v1/runs/${run.id}/`)).body;
      expect(row.status).toBe(ending);
      expect(row.text).toBe(ending === 'failed' ? 'partial' : 'whole');
      const stage = (await admin.get(`/api/v1/projects/${projectId}/stages/`)).body.find((s: { stage_type: string }) => s.stage_type === 'rewrite');
      expect(stage.status).toBe(ending);
    }
  });

  it('checkpoints any number of runs in one statement of one shape, and reads each run back whole', async () => {
    const projectId = await newProject();
    await provider('chunked', 'fake-model?ttft=10&tps=400&tokens=5');
    // Two runs of one stage, one after the other (a stage has one active run at a time).
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) ids.push((await waitFinished((await startRun(projectId, 'chunked')).id)).id);
    const repo = new RunRepository(studio.database.db);
    // Text a model may send: CJK, an emoji, quotes, a backslash, a brace and a comma (array-literal syntax).
    const odd = '第一章 "引号" \\ {a,b} 😀\n';
    const sent = await statementsDuring(async () => {
      await repo.appendChunks([{ runId: ids[0], seq: 0, offset: 0, text: 'one ' }]);
      await repo.appendChunks([
        { runId: ids[0], seq: 1, offset: 4, text: odd },
        { runId: ids[1], seq: 0, offset: 0, text: 'other' },
        { runId: ids[1], seq: 1, offset: 2, text: 'HER' },
      ]);
    });
    const inserts = sent.filter((q) => /^insert into "run_text_chunks"/.test(q));
    expect(inserts, sent.join('\n')).toHaveLength(2);
    expect(inserts[1]).toBe(inserts[0]);
    const texts = await studio.database.db.transaction(async (tx) => Promise.all(ids.map((id) => repo.checkpointedText(tx, id))));
    expect(texts).toEqual(['one ' + odd, 'otHER']);
    for (const id of ids) await studio.database.db.transaction((tx) => repo.deleteChunks(tx, id));
  });

  it("updates its project in place (HOT): no index of projects holds a column a run's start or ending writes", async () => {
    const projectId = await newProject();
    await provider('in place', 'fake-model?ttft=10&tps=400&tokens=5');
    const sent = await statementsDuring(async () => waitFinished((await startRun(projectId, 'in place')).id));
    const written = new Set(sent.flatMap((q) => [...(q.match(/^update "projects" set (.*?) where/)?.[1].matchAll(/"(\w+)" =/g) ?? [])].map((m) => m[1])));
    expect([...written].sort(), sent.join('\n')).toEqual(['status', 'updated_at']);
    const indexed: any = await studio.database.db.execute(
      sql.raw(`select distinct a.attname from pg_index i join pg_class c on c.oid = i.indrelid join pg_attribute a on a.attrelid = c.oid and a.attnum = any(i.indkey) where c.relname = 'projects'`),
    );
    const columns = (indexed.rows ?? indexed).map((r: { attname: string }) => r.attname);
    expect(columns).toContain('owner_id');
    // A written column in an index would give every update a new row version and index entries (and dead ones to vacuum).
    expect(columns.filter((c: string) => written.has(c))).toEqual([]);
  });

  it('saves the usage row side by side with the ending, and sends done once both are saved', async () => {
    const projectId = await newProject();
    const providerId = await provider('usage held', 'fake-model?ttft=20&tps=400&tokens=20');
    const insertUsage = ProviderRepository.prototype.insertUsage;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const spy = vi.spyOn(ProviderRepository.prototype, 'insertUsage').mockImplementation(async function (this: ProviderRepository, values) {
      await held;
      return insertUsage.call(this, values);
    });
    try {
      const run = await startRun(projectId, 'usage held');
      let ended = false;
      const followed = events(run.id).finally(() => (ended = true));
      // The ending is saved while the usage row is still on its way (one after the other, it would wait)…
      await vi.waitFor(async () => expect((await admin.get(`/api/v1/runs/${run.id}/`)).body.status).toBe('completed'), { timeout: 10_000, interval: 20 });
      // …and `done`, which tells the client all is saved, waits for the row.
      await new Promise((r) => setTimeout(r, 100));
      expect(ended).toBe(false);
      release();
      expect((await followed).events.at(-1)!.data.type).toBe('done');
      const usage = (await admin.get(`/api/v1/models/providers/${providerId}/usage`)).body;
      expect(usage.totals).toMatchObject({ calls: 1, completion_tokens: 20, failures: 0 });
    } finally {
      spy.mockRestore();
      release();
    }
  });

  it('completes a run whose usage row cannot be saved: lost bookkeeping is never a lost result', async () => {
    const projectId = await newProject();
    const providerId = await provider('usage lost', 'fake-model?ttft=20&tps=400&tokens=20');
    const spy = vi.spyOn(ProviderRepository.prototype, 'insertUsage').mockRejectedValue(new Error('usage table unavailable'));
    try {
      const run = await startRun(projectId, 'usage lost');
      const seen = await events(run.id);
      expect(seen.events.at(-1)!.data.type).toBe('done');
      expect(seen.text).toBe(expectedFor(run));
      expect(spy).toHaveBeenCalled();
      const saved = (await admin.get(`/api/v1/runs/${run.id}/`)).body;
      expect(saved.status).toBe('completed');
      expect(saved.output.rewritten_text).toBe(expectedFor(run).trim());
    } finally {
      spy.mockRestore();
    }
    expect((await admin.get(`/api/v1/models/providers/${providerId}/usage`)).body.totals).toMatchObject({ calls: 0 });
  });

  it("uses the project's own template set for the next run, an edit at once, with the exact prompt stored on the run", async () => {
    const projectId = await newProject();
    const own = await admin.post('/api/v1/prompts/sets/', { name: '我的模板' });
    expect(own.status).toBe(201);
    const template = own.body.templates.find((t: any) => t.stage === 'rewrite');
    expect((await admin.put(`/api/v1/projects/${projectId}/prompt-set/`, { prompt_set_id: own.body.id })).status).toBe(200);
    // A run before the edit: the set's template as copied (and now shared between starts for a while).
    const before = await startRun(projectId, 'fast');
    expect(before.prompt.startsWith('【自定义模板】')).toBe(false);
    await events(before.id);
    const edited = await admin.patch(`/api/v1/prompts/templates/${template.id}/`, { content: '【自定义模板】请用{{ style_label }}的风格改写：{{ original_text }}' });
    expect(edited.status).toBe(200);
    const run = await startRun(projectId, 'fast');
    expect(run.prompt.startsWith('【自定义模板】')).toBe(true);
    expect(run.prompt).toContain('一只猫');
    const seen = await events(run.id);
    expect(seen.text).toBe(expectedFor(run));
  });
});
