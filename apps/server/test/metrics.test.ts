import { startFakeLlm } from '@ai-story/fake-llm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, createUser, setupAdmin, startStudio, type TestStudio } from './helpers.ts';
import { follow } from './sse-client.ts';

const TOKEN = 'metrics-scraper-token-0123456789';

/** Prometheus's text format → `name{label="v",…}` (labels as written) → value; comments skipped. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*(?:\{.*\})?)\s+(\S+)$/);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    samples.set(m[1], Number(m[2]));
  }
  return samples;
}

describe(`GET /metrics (${process.env.TEST_DB ?? 'pglite'})`, () => {
  let fake: Awaited<ReturnType<typeof startFakeLlm>>;
  let studio: TestStudio;
  let admin: Client;

  beforeAll(async () => {
    fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    studio = await startStudio({ metricsToken: TOKEN });
    admin = await setupAdmin(studio);
  });
  afterAll(async () => {
    await studio?.close();
    await fake?.close();
  });

  const scrape = async () => {
    const res = await fetch(`${studio.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return parseExposition(await res.text());
  };
  const provider = async (name: string, model: string) => (await admin.post('/api/v1/models/providers/', { name, api_url: fake.url, model_name: model })).body.id as string;
  const startRun = async (providerId: string) => {
    const project = (await admin.post('/api/v1/projects/', { name: 'metrics', original_topic: '灯塔守护人在暴风雨的夜里救起一头鲸鱼。' })).body.id as string;
    const start = await admin.post(`/api/v1/projects/${project}/stages/rewrite/runs/`, { input: {}, provider_id: providerId });
    expect(start.status).toBe(202);
    return start.body.id as string;
  };
  const followRun = (runId: string) => follow(`${studio.url}/api/v1/runs/${runId}/events`, { cookie: admin.cookie });

  it('counts runs, streams, events, first-token and token latencies, and provider errors of real runs', async () => {
    const before = await scrape();
    expect(before.get('ai_story_runs_finished_total{stage="rewrite",status="completed"}') ?? 0).toBe(0);

    const ok = await followRun(await startRun(await provider('fast', 'fake-model?ttft=20&tps=400&tokens=40')));
    expect(ok.events.at(-1)!.data.type).toBe('done');
    const tokens = ok.events.filter((e) => e.data.type === 'token').length;
    const failed = await followRun(await startRun(await provider('bad key', 'fake-model?quirk=bad_key')));
    expect(failed.events.at(-1)!.data).toMatchObject({ type: 'error', code: 'auth' });

    // A slow run: its stream is counted while it is open, and no longer once it has closed.
    const slow = followRun(await startRun(await provider('slow', 'fake-model?ttft=20&tps=40&tokens=60')));
    let open = 0;
    for (let i = 0; i < 200 && open === 0; i++) {
      open = (await scrape()).get('ai_story_sse_streams_active')!;
      if (open === 0) await new Promise((r) => setTimeout(r, 25));
    }
    expect(open).toBe(1);
    const slowSeen = await slow;

    const after = await scrape();
    expect(after.get('ai_story_runs_finished_total{stage="rewrite",status="completed"}')).toBe(2);
    expect(after.get('ai_story_runs_finished_total{stage="rewrite",status="failed"}')).toBe(1);
    expect(after.get('ai_story_runs_active')).toBe(0);
    expect(after.get('ai_story_sse_streams_active')).toBe(0);
    // Every event a subscriber received was counted once, and nothing else was.
    expect(after.get('ai_story_sse_events_sent_total')).toBe(ok.events.length + failed.events.length + slowSeen.events.length);
    expect(after.get('ai_story_provider_errors_total{provider_type="llm",code="auth"}')).toBe(1);

    // One first token per completed answer; a gap between each two deltas of them.
    expect(after.get('ai_story_llm_time_to_first_token_seconds_count')).toBe(2);
    expect(after.get('ai_story_llm_time_to_first_token_seconds_sum')).toBeGreaterThan(0);
    const gaps = after.get('ai_story_llm_token_gap_seconds_count')!;
    expect(gaps).toBeGreaterThanOrEqual(tokens - 1);
    expect(after.get('ai_story_llm_token_gap_seconds_bucket{le="+Inf"}')).toBe(gaps);
    expect(after.get('ai_story_llm_token_gap_seconds_bucket{le="0.001"}')!).toBeLessThanOrEqual(after.get('ai_story_llm_token_gap_seconds_bucket{le="10"}')!);

    // The process's own metrics come along.
    expect(after.get('process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(after.has('nodejs_eventloop_lag_seconds')).toBe(true);
  });

  it("answers the scraper's token and an admin; anyone else is refused", async () => {
    const user = await createUser(studio, admin, 'metrics-user@example.com');
    const get = (headers: Record<string, string> = {}) => fetch(`${studio.url}/metrics`, { headers }).then((r) => r.status);
    expect(await get()).toBe(401);
    expect(await get({ authorization: 'Bearer not-the-metrics-token-at-all' })).toBe(401);
    expect(await get({ authorization: `Bearer ${TOKEN}x` })).toBe(401);
    expect(await get({ cookie: user.cookie })).toBe(403);
    expect(await get({ cookie: admin.cookie })).toBe(200);
    // The scraper's token opens nothing else.
    expect((await fetch(`${studio.url}/api/v1/projects/`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(401);
  });

  it('does not exist without METRICS_TOKEN', async () => {
    const plain = await startStudio();
    try {
      // No metrics route: a 404, or with a built web app beside the studio, its page's public fallback
      // (where the unknown Bearer value is refused): never the metrics.
      const res = await fetch(`${plain.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect([401, 404]).toContain(res.status);
      expect(await res.text()).not.toMatch(/ai_story_/);
    } finally {
      await plain.close();
    }
  });
});
