import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { APIRequestContext } from '@playwright/test';
import { startFakeLlm, type FakeLlmServer } from '@ai-story/fake-llm';
import { expect, signIn, startStudio, test, type Studio } from './fixtures';

test.describe.configure({ timeout: 240_000 });

const SHOTS = path.join(import.meta.dirname, 'screenshots');
mkdirSync(SHOTS, { recursive: true });

const TOPIC = '雨夜，一只橘猫在街角发抖。小女孩撑伞走来，把它抱回了家。第二天清晨，阳光照进窗台，猫咪伸了个懒腰。';

// The image stage is built in parallel: until it is merged this studio carries the test-only media
// stage under `image` (real PNGs in the real store, the image stage's item shape), so clips can be
// made offline end to end: storyboard and camera on the simulated LLM, images, then local motion.
// Renders wait for this file (HOLD_RENDERS_UNTIL): the queue is looked at while it stands still.
const holdDir = mkdtempSync(path.join(os.tmpdir(), 'ai-story-clips-'));
const releaseRenders = () => writeFileSync(path.join(holdDir, 'release'), '');
let upstream: FakeLlmServer;
let studio: Studio;
test.beforeAll(async () => {
  upstream = await startFakeLlm();
  studio = await startStudio({
    entry: 'apps/server/test/fixtures/studio-with-test-stage.ts',
    env: { MEDIA_CONCURRENCY: '1', HOLD_RENDERS_UNTIL: path.join(holdDir, 'release') },
  });
});
test.afterAll(async () => {
  await studio?.stop();
  await upstream?.close();
  rmSync(holdDir, { recursive: true, force: true });
});

async function runToEnd(request: APIRequestContext, projectId: string, stage: string, body: Record<string, unknown>) {
  const headers = { origin: studio.baseURL };
  const res = await request.post(`${studio.baseURL}/api/v1/projects/${projectId}/stages/${stage}/runs/`, { data: body, headers });
  expect(res.status(), await res.text()).toBe(202);
  const runId = (await res.json()).id as string;
  await expect.poll(async () => (await (await request.get(`${studio.baseURL}/api/v1/runs/${runId}/`)).json()).status, { timeout: 60_000 }).toBe('completed');
}

test('clips are rendered offline, fill the cards as they finish, and one plays in the page', async ({ browser }) => {
  const context = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1440, height: 1000 } });
  await signIn(context, studio);
  const request = context.request;
  const headers = { origin: studio.baseURL };
  const llm = (await (await request.post(`${studio.baseURL}/api/v1/models/providers/`, { data: { name: '离线模型', api_url: upstream.url, model_name: 'fake-model?tps=800&ttft=5' }, headers })).json()).id;
  const projectId = (await (await request.post(`${studio.baseURL}/api/v1/projects/`, { data: { name: '橘猫的雨夜', original_topic: TOPIC }, headers })).json()).id;
  await runToEnd(request, projectId, 'storyboard', { input: { shot_count: 3 }, provider_id: llm });
  await runToEnd(request, projectId, 'camera', { input: {}, provider_id: llm });
  await runToEnd(request, projectId, 'image', { input: { delay_ms: 0 } });
  const shots = (await (await request.get(`${studio.baseURL}/api/v1/projects/${projectId}/storyboards/`)).json()).results as { id: string }[];
  // Short shots keep the renders quick; the clip follows each shot's length.
  for (const shot of shots) expect((await request.patch(`${studio.baseURL}/api/v1/storyboards/${shot.id}/`, { data: { duration_seconds: 2.5 }, headers })).status()).toBe(200);

  const page = await context.newPage();
  await page.goto(`${studio.baseURL}/projects/${projectId}/video`);
  const cards = page.getByTestId('clip-card');
  await expect(cards).toHaveCount(3);
  await expect(cards.first().locator('img')).toBeVisible();
  await expect(page.getByTestId('clip-movement').first()).toBeVisible();

  await page.getByTestId('video-generate').click();
  // With one render slot, the first shot renders while the other two wait in line, in storyboard
  // order, and say where (each takes its place before it prepares, so a quicker later shot waits).
  await expect(page.getByTestId('clip-task')).toHaveText([/渲染中 0%/, '排队第 1 位', '排队第 2 位']);
  // The panel joined the run after it began: it still knows how many shots there are to make.
  await expect(page.getByTestId('stat-items')).toHaveText('0 / 3');
  await page.screenshot({ path: path.join(SHOTS, 'clips-rendering.png'), fullPage: true });
  releaseRenders();
  await expect(page.locator('[data-testid="clip-card"][data-has-clip="true"]')).toHaveCount(3, { timeout: 120_000 });
  await expect(page.getByTestId('video-phase')).toContainText('已完成');
  await page.screenshot({ path: path.join(SHOTS, 'clips-done.png'), fullPage: true });

  // The first clip plays in the page: its time advances.
  const video = page.getByTestId('clip-video').first();
  await expect(video).toHaveAttribute('poster', /\/api\/v1\/media\//);
  await video.evaluate((v: HTMLVideoElement) => v.play());
  await expect.poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime), { timeout: 15_000 }).toBeGreaterThan(0.2);
  expect(await video.evaluate((v: HTMLVideoElement) => [v.videoWidth, v.videoHeight])).toEqual([720, 1280]);

  // Nothing changed: making them again reuses every clip, and the cards say so.
  await page.getByTestId('video-generate').click();
  await expect(page.getByTestId('clip-cached')).toHaveCount(3, { timeout: 60_000 });
  await page.screenshot({ path: path.join(SHOTS, 'clips-cached.png'), fullPage: true });
  await context.close();
});
