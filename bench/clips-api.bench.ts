/**
 * Does the API keep answering while clips render? p50/p99 of a simple API call
 * (`GET /api/v1/projects/`) on an idle studio, then while the video stage renders 8 shots with local
 * camera motion (MEDIA_CONCURRENCY slots, default cores − 1). The studio runs in this process, so
 * anything of the render that blocked the event loop would show here.
 *
 *   node --import tsx bench/clips-api.bench.ts [--shots 8] [--seconds 4]
 */
import { parseArgs } from 'node:util';
import { startFakeLlm } from '@ai-story/fake-llm';
import { testMediaStage } from '../apps/server/test/fixtures/test-media-stage.ts';
import { setupAdmin, startStudio } from '../apps/server/test/helpers.ts';

const { values } = parseArgs({ options: { shots: { type: 'string' }, seconds: { type: 'string' } } });
const shotCount = Number(values.shots ?? 8);
const seconds = Number(values.seconds ?? 4);

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const summary = (ms: number[]) => {
  const s = [...ms].sort((a, b) => a - b);
  return `n=${s.length} p50=${quantile(s, 0.5).toFixed(1)} ms p99=${quantile(s, 0.99).toFixed(1)} ms max=${s.at(-1)!.toFixed(1)} ms`;
};

const llm = await startFakeLlm({ port: 0, host: '127.0.0.1' });
const studio = await startStudio({}, undefined, undefined, { stages: { image: testMediaStage } });
try {
  const admin = await setupAdmin(studio);
  const provider = (await admin.post('/api/v1/models/providers/', { name: 'fake', api_url: llm.url, model_name: 'fake-model?ttft=5&tps=800' })).body.id;
  const id = (await admin.post('/api/v1/projects/', { name: 'bench', original_topic: '雨夜。一只橘猫在街角发抖。小女孩撑着红伞走来。她蹲下，把猫抱进怀里。第二天，阳光照进窗台。' })).body.id;
  const runToEnd = async (stage: string, body: Record<string, unknown>) => {
    const runId = (await admin.post(`/api/v1/projects/${id}/stages/${stage}/runs/`, body)).body.id;
    for (;;) {
      const run = (await admin.get(`/api/v1/runs/${runId}/`)).body;
      if (!['running', 'queued'].includes(run.status)) return run;
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await runToEnd('storyboard', { input: { shot_count: shotCount }, provider_id: provider });
  await runToEnd('camera', { input: {}, provider_id: provider });
  await runToEnd('image', { input: { delay_ms: 0 } });
  const shots = (await admin.get(`/api/v1/projects/${id}/storyboards/`)).body.results as { id: string }[];
  for (const shot of shots) await admin.patch(`/api/v1/storyboards/${shot.id}/`, { duration_seconds: seconds });

  const call = async () => {
    const t0 = performance.now();
    const res = await admin.get('/api/v1/projects/');
    if (res.status !== 200) throw new Error(`GET /projects/ answered ${res.status}`);
    return performance.now() - t0;
  };
  const idle: number[] = [];
  for (let i = 0; i < 200; i++) idle.push(await call());

  const t0 = performance.now();
  const runId = (await admin.post(`/api/v1/projects/${id}/stages/video/runs/`, { input: {} })).body.id;
  const busy: number[] = [];
  let status = 'running';
  while (status === 'running') {
    busy.push(await call());
    if (busy.length % 20 === 0) status = (await admin.get(`/api/v1/runs/${runId}/`)).body.status;
  }
  const renderS = (performance.now() - t0) / 1000;
  console.log(`studio: MEDIA_CONCURRENCY=${studio.config.mediaConcurrency}; ${shots.length} shots × ${seconds} s at 720×1280, 25 fps; run ${status} in ${renderS.toFixed(1)} s (${(renderS / (shots.length * seconds)).toFixed(2)}× real time)`);
  console.log(`GET /api/v1/projects/ idle:          ${summary(idle)}`);
  console.log(`GET /api/v1/projects/ while rendering: ${summary(busy)}`);
} finally {
  await studio.close();
  await llm.close();
}
