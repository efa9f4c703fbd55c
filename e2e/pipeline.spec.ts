import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Page } from '@playwright/test';
import { startFakeLlm, type FakeLlmServer } from '@ai-story/fake-llm';
import { createUser, expect, signIn, test } from './fixtures';

test.use({ locale: 'zh-CN' });
test.describe.configure({ timeout: 480_000 });

const SHOTS = path.join(import.meta.dirname, 'screenshots');
mkdirSync(SHOTS, { recursive: true });

// The project's LLM stages are routed (its own model config) to two simulated models: the rewrite slow
// enough to be seen running while the viewer joins, the storyboard and camera quicker. The rewrite is
// short (~150 characters, under a minute of narration) because every later stage renders each second of
// it at 720p; the full-length render is the export spec's to check.
const REWRITE_MODEL = 'fake-model?tps=15&ttft=200&tokens=100';
const SHOTS_MODEL = 'fake-model?tps=45&ttft=200';
let upstream: FakeLlmServer;
test.beforeAll(async () => {
  upstream = await startFakeLlm();
});
test.afterAll(async () => {
  await upstream?.close();
});

const LLM_STAGES = ['rewrite', 'storyboard', 'camera'] as const;
const statusOf = (page: Page, stage: string) => page.getByTestId(`stage-status-${stage}`);

/** Watches the stepper and remembers every distinct row of statuses, in order. */
function recordStepper(page: Page) {
  const rows: string[] = [];
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      const row = await page
        .locator('[data-testid^="stage-status-"]')
        .evaluateAll((els) => els.map((e) => `${e.getAttribute('data-testid')!.slice(13)}:${e.getAttribute('data-status')}`).join(' '))
        .catch(() => '');
      if (row && rows.at(-1) !== row) rows.push(row);
      await page.waitForTimeout(150).catch(() => undefined);
    }
  })();
  return {
    rows,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

test('one click runs every stage in turn to a finished video, with pause and resume, while a viewer watches the same run live', async ({ page, context, studio, newPage }) => {
  await signIn(context, studio);
  const headers = { origin: studio.baseURL };
  const project = await (
    await page.request.post('/api/v1/projects/', {
      data: { name: '一键生成：海边的灯塔', original_topic: '海边有一座老灯塔，守塔人每晚点亮它。一天夜里暴风雨来了，一艘小船在浪里迷了路，灯塔的光把它带回了港口。' },
      headers,
    })
  ).json();
  const providerFor = async (label: string, model: string) =>
    (
      await page.request.post('/api/v1/models/providers/', {
        data: { name: `流水线${label}-${Date.now().toString(36)}`, api_url: upstream.url, api_key: 'sk-e2e-pipeline', model_name: model },
        headers,
      })
    ).json();
  const rewriter = await providerFor('改写', REWRITE_MODEL);
  const shotMaker = await providerFor('分镜', SHOTS_MODEL);
  // Short shots (a project setting); a shot still lasts as long as its narration.
  expect((await page.request.patch(`/api/v1/projects/${project.id}/`, { data: { min_shot_s: 1, max_shot_s: 2 }, headers })).status()).toBe(200);
  const routing = Object.fromEntries(LLM_STAGES.map((s) => [s, { provider_ids: [(s === 'rewrite' ? rewriter : shotMaker).id] }]));
  expect((await page.request.put(`/api/v1/projects/${project.id}/model-config/`, { data: routing, headers })).status()).toBe(200);

  // A teammate with read access, signed in in a browser of their own.
  const viewer = await createUser(studio, { name: '观众' });
  expect((await page.request.post(`/api/v1/projects/${project.id}/members/`, { data: { email: viewer.email, role: 'viewer' }, headers })).status()).toBe(202);
  const watcher = await newPage(viewer);

  await page.goto(`/projects/${project.id}`);
  await watcher.goto(`/projects/${project.id}/storyboard`);
  await expect(watcher.getByTestId('project-access')).toHaveAttribute('data-access', 'viewer');
  await expect(watcher.getByTestId('project-readonly')).toBeVisible();
  // Read-only everywhere: no pipeline controls, no stage actions, no generate, no edit handles.
  await expect(watcher.getByTestId('pipeline-controls')).toHaveCount(0);
  await expect(watcher.getByTestId('project-share')).toHaveCount(0);
  await expect(watcher.getByTestId('stage-actions-storyboard')).toHaveCount(0);
  await expect(watcher.getByTestId('storyboard-generate')).toBeDisabled();
  for (const s of LLM_STAGES) await expect(statusOf(page, s)).toHaveAttribute('data-status', 'pending');

  const owner = recordStepper(page);
  const seen = recordStepper(watcher);
  await page.getByTestId('pipeline-execute').click();

  // The stepper advances: rewrite runs, then the storyboard; both pages see it without a reload.
  await expect(statusOf(page, 'rewrite')).toHaveAttribute('data-status', 'running', { timeout: 30_000 });
  await expect(page.getByTestId('project-status')).toHaveAttribute('data-status', 'processing');
  await expect(statusOf(watcher, 'rewrite')).toHaveAttribute('data-status', 'running');
  await expect(page.getByTestId('stage-progress-rewrite')).toBeVisible();
  await page.screenshot({ path: path.join(SHOTS, 'pipeline-01-rewrite.png') });
  await expect(statusOf(page, 'storyboard')).toHaveAttribute('data-status', 'running', { timeout: 60_000 });
  await expect(statusOf(page, 'rewrite')).toHaveAttribute('data-status', 'completed');

  // The viewer's storyboard tab follows the pipeline's run: its cards arrive live there too.
  await expect(statusOf(watcher, 'storyboard')).toHaveAttribute('data-status', 'running');
  await expect(watcher.locator('[data-testid="shot-list"][data-live="true"] [data-testid="shot-card"]').first()).toBeVisible({ timeout: 60_000 });
  await watcher.screenshot({ path: path.join(SHOTS, 'pipeline-02-viewer-live.png') });

  // Pause: the running stage finishes, nothing after it starts; resume carries on.
  await page.getByTestId('pipeline-pause').click();
  await expect(page.getByTestId('pipeline-pause')).toContainText('正在暂停');
  await expect(page.getByTestId('project-status')).toHaveAttribute('data-status', 'paused', { timeout: 90_000 });
  await expect(statusOf(page, 'storyboard')).toHaveAttribute('data-status', 'completed');
  await expect(statusOf(page, 'camera')).toHaveAttribute('data-status', 'pending');
  await expect(watcher.getByTestId('project-status')).toHaveAttribute('data-status', 'paused');
  await page.screenshot({ path: path.join(SHOTS, 'pipeline-03-paused.png') });
  await page.getByTestId('pipeline-resume').click();
  await expect(statusOf(page, 'camera')).toHaveAttribute('data-status', 'running', { timeout: 30_000 });

  // Done: every stage completed — the media made offline — and the project with it.
  await expect(statusOf(page, 'export')).toHaveAttribute('data-status', 'completed', { timeout: 300_000 });
  await expect(page.getByTestId('project-status')).toHaveAttribute('data-status', 'completed', { timeout: 15_000 });
  for (const s of [...LLM_STAGES, 'image', 'narration', 'video', 'export'] as const) await expect(statusOf(page, s)).toHaveAttribute('data-status', 'completed');
  await expect(watcher.getByTestId('project-status')).toHaveAttribute('data-status', 'completed', { timeout: 15_000 });
  await page.screenshot({ path: path.join(SHOTS, 'pipeline-04-completed.png') });
  await owner.stop();
  await seen.stop();

  // Both pages watched the same order: rewrite, then storyboard, then camera, each running once.
  for (const rows of [owner.rows, seen.rows]) {
    const running = rows.flatMap((r) => LLM_STAGES.filter((s) => r.includes(`${s}:running`)));
    const order = running.filter((s, i) => s !== running[i - 1]);
    expect(order).toEqual([...LLM_STAGES]);
  }

  // The saved results are there for the viewer, read-only.
  await watcher.getByTestId('stage-tab-camera').click();
  const cards = watcher.getByTestId('movement-card');
  await expect(cards.first()).toBeVisible();
  await expect(cards.first()).not.toHaveAttribute('data-movement', '');
  await expect(watcher.getByTestId('movement-regenerate')).toHaveCount(0);

  // The owner takes the access back: the viewer is told and leaves the project.
  await page.getByTestId('project-share').click();
  const member = page.getByTestId('share-member').filter({ hasText: viewer.email });
  await member.getByTestId('share-member-remove').click();
  await page.locator('.el-message-box').getByRole('button', { name: '移除' }).click();
  await expect(member).toHaveCount(0);
  await expect(watcher.locator('.el-message')).toContainText('访问权限已被移除', { timeout: 15_000 });
  await expect(watcher).toHaveURL(/\/projects$/);

  for (const p of [rewriter, shotMaker]) await page.request.patch(`/api/v1/models/providers/${p.id}/`, { data: { is_active: false }, headers });
});
