import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { APIRequestContext, Page } from '@playwright/test';
import { startFakeLlm, type FakeLlmServer } from '@ai-story/fake-llm';
import { expect, signIn, test, type Studio } from './fixtures';

test.use({ locale: 'zh-CN', viewport: { width: 1440, height: 1000 } });
test.describe.configure({ timeout: 180_000 });

const SHOTS = path.join(import.meta.dirname, 'screenshots');
mkdirSync(SHOTS, { recursive: true });

// A slow model (about 50 s per answer) leaves time to watch, open a second page, reload and stop
// mid-run even on a busy machine. It is chosen explicitly in the form, so what other specs add to
// the shared studio does not change the routing.
const SLOW_MODEL = 'fake-model?tps=8&tokens=400';
let upstream: FakeLlmServer;
test.beforeAll(async () => {
  upstream = await startFakeLlm();
});
test.afterAll(async () => {
  await upstream?.close();
});

const TOPIC = '黑洞是时空中引力极强的区域，连光都无法逃脱。从恒星坍缩讲起，介绍事件视界、霍金辐射，以及人类拍到的第一张黑洞照片。';

async function api(page: Page, studio: Studio) {
  const request: APIRequestContext = page.request;
  const headers = { origin: studio.baseURL };
  return {
    async createProject(name: string): Promise<string> {
      const res = await request.post('/api/v1/projects/', { data: { name, original_topic: TOPIC }, headers });
      expect(res.status()).toBe(201);
      return (await res.json()).id;
    },
    async slowProvider(): Promise<string> {
      const name = `慢速模型-${Date.now().toString(36)}`;
      const res = await request.post('/api/v1/models/providers/', {
        data: { name, api_url: upstream.url, api_key: 'sk-e2e-slow', model_name: SLOW_MODEL },
        headers,
      });
      expect(res.status()).toBe(201);
      return name;
    },
    async run(id: string) {
      return (await request.get(`/api/v1/runs/${id}/`)).json();
    },
    async project(id: string) {
      return (await request.get(`/api/v1/projects/${id}/`)).json();
    },
  };
}

async function chooseModel(page: Page, label: string) {
  await page.getByTestId('rewrite-provider').click();
  await page.locator('.el-select-dropdown__item:visible', { hasText: label }).first().click();
}

const streamText = (page: Page) => page.getByTestId('rewrite-stream-text');
const phase = (page: Page) => page.getByTestId('rewrite-phase');
const readStream = async (page: Page) => (await streamText(page).textContent({ timeout: 2_000 }).catch(() => null)) ?? '';

test('the rewrite streams token by token, survives a reload without duplicating text, and a second page sees it live', async ({ page, context, studio, newPage }) => {
  await signIn(context, studio);
  const calls = await api(page, studio);
  const projectId = await calls.createProject('黑洞三分钟');
  const providerName = await calls.slowProvider();

  await page.goto(`/projects/${projectId}/rewrite`);
  // The original text starts from the project's topic.
  await expect(page.getByTestId('rewrite-original')).toHaveValue(TOPIC);
  await expect(page.getByTestId('rewrite-placeholder')).toBeVisible();
  await chooseModel(page, providerName);
  await page.getByTestId('rewrite-generate').click();

  // The output grows while the run is live: at least three growing observations before it is done.
  await expect(phase(page)).toHaveAttribute('data-phase', /running|connecting/);
  await expect(page.getByTestId('rewrite-generate')).toBeDisabled();
  const seen: number[] = [];
  await expect
    .poll(
      async () => {
        const n = (await readStream(page)).length;
        if (n > (seen.at(-1) ?? 0)) seen.push(n);
        return seen.length;
      },
      { timeout: 30_000, intervals: [250] },
    )
    .toBeGreaterThanOrEqual(3);
  await expect(phase(page)).toHaveAttribute('data-phase', 'running');
  await expect(page.getByTestId('stat-tokens')).not.toHaveText('0');
  await expect(page.getByTestId('stage-status-rewrite')).toHaveAttribute('data-status', 'running');
  await page.screenshot({ path: path.join(SHOTS, 'rewrite-01-streaming.png'), fullPage: false });

  // A second page of the same project joins mid-run: it gets the text so far, then the live tail.
  const second = await newPage({ email: studio.admin!.email, password: studio.admin!.password });
  await second.goto(`/projects/${projectId}/rewrite`);
  await expect.poll(async () => (await readStream(second)).length, { timeout: 30_000 }).toBeGreaterThan(0);
  const [a, b] = [await readStream(page), await readStream(second)];
  expect(a.startsWith(b) || b.startsWith(a)).toBe(true);

  // Reload mid-run: the page follows the same run, from its beginning, and keeps going.
  const before = await readStream(page);
  await page.reload();
  await expect.poll(async () => (await readStream(page)).length, { timeout: 15_000 }).toBeGreaterThanOrEqual(before.length);
  const afterReload = await readStream(page);
  expect(afterReload.startsWith(before)).toBe(true);
  await expect(phase(page)).toHaveAttribute('data-phase', 'running');

  // Done: the editor holds exactly the saved text on both pages — nothing doubled by the reload.
  await expect(phase(page)).toHaveAttribute('data-phase', 'completed', { timeout: 90_000 });
  const project = await calls.project(projectId);
  const stage = project.stages.find((s: { stage_type: string }) => s.stage_type === 'rewrite');
  const run = await calls.run(stage.current_run_id);
  expect(run.status).toBe('completed');
  expect(run.text.length).toBeGreaterThan(afterReload.length);
  expect(run.text.startsWith(afterReload)).toBe(true);
  expect(stage.output.rewritten_text).toBe(run.text.trim());
  await expect(page.getByTestId('rewrite-editor')).toHaveValue(stage.output.rewritten_text);
  await expect(page.getByTestId('rewrite-unsaved')).toBeHidden();
  await expect(phase(second)).toHaveAttribute('data-phase', 'completed', { timeout: 30_000 });
  await expect(second.getByTestId('rewrite-editor')).toHaveValue(stage.output.rewritten_text);
  await expect(page.getByTestId('stage-status-rewrite')).toHaveAttribute('data-status', 'completed');
  await page.screenshot({ path: path.join(SHOTS, 'rewrite-02-done.png'), fullPage: false });
});

test('停止 keeps the partial text, a hand edit is saved, and an older version is restored from the history', async ({ page, context, studio }) => {
  await signIn(context, studio);
  const calls = await api(page, studio);
  const projectId = await calls.createProject('深海传说');
  const providerName = await calls.slowProvider();

  // Version 1: the offline demo model, no key needed, labelled as simulated.
  await page.goto(`/projects/${projectId}/rewrite`);
  await chooseModel(page, '离线演示');
  await page.getByTestId('rewrite-generate').click();
  await expect(page.getByTestId('rewrite-simulated')).toBeVisible();
  await expect(phase(page)).toHaveAttribute('data-phase', 'completed', { timeout: 60_000 });
  const v1 = await page.getByTestId('rewrite-editor').inputValue();
  expect(v1.length).toBeGreaterThan(20);
  const history = page.getByTestId('run-history');
  await expect(history.getByTestId('run-item')).toHaveCount(1);
  await expect(history.getByTestId('run-item').first().getByTestId('run-simulated')).toBeVisible();

  // A second run on the slow model, stopped mid-way: the text so far stays, marked as not saved.
  await chooseModel(page, providerName);
  await page.getByTestId('rewrite-generate').click();
  await expect.poll(async () => (await readStream(page)).length, { timeout: 20_000 }).toBeGreaterThan(30);
  // The page reads the project again when a run ends; held back here, the editor must not show the
  // older version in the meantime.
  const projectUrl = new RegExp(`/api/v1/projects/${projectId}/$`);
  await page.route(projectUrl, async (route) => {
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await route.continue().catch(() => undefined);
  });
  await page.getByTestId('rewrite-stop').click();
  await expect(phase(page)).toHaveAttribute('data-phase', 'cancelled', { timeout: 15_000 });
  const partial = await page.getByTestId('rewrite-editor').inputValue();
  await page.unroute(projectUrl);
  expect(partial.length).toBeGreaterThan(30);
  expect(partial).not.toBe(v1);
  await expect(page.getByTestId('rewrite-unsaved')).toBeVisible();
  await expect(history.getByTestId('run-item').first().getByTestId('run-status')).toHaveAttribute('data-status', 'cancelled');
  let project = await calls.project(projectId);
  let stage = project.stages.find((s: { stage_type: string }) => s.stage_type === 'rewrite');
  expect(stage.output.rewritten_text).toBe(v1); // stopping replaced nothing
  const stopped = await calls.run(stage.current_run_id);
  expect(stopped.status).toBe('cancelled');
  expect(stopped.text).toBe(partial);
  await page.screenshot({ path: path.join(SHOTS, 'rewrite-03-stopped.png'), fullPage: false });

  // Keep the partial text with a hand edit: a new version.
  const edited = `${partial}\n（结尾由编辑补写）`;
  await page.getByTestId('rewrite-editor').fill(edited);
  await page.getByTestId('rewrite-save').click();
  await expect(page.getByTestId('rewrite-unsaved')).toBeHidden();
  await expect(history.locator('[data-testid="run-item"][data-source="edit"]')).toHaveCount(1);
  project = await calls.project(projectId);
  stage = project.stages.find((s: { stage_type: string }) => s.stage_type === 'rewrite');
  expect(stage.output.rewritten_text).toBe(edited);

  // Compare the first version with the current text, then restore it.
  const first = history.locator('[data-testid="run-item"][data-source="ai"]').last();
  await first.getByTestId('run-compare').click();
  const compare = page.getByTestId('run-compare-dialog');
  await expect(compare.getByTestId('diff-before')).toContainText(v1.slice(0, 10));
  await expect(compare.getByTestId('diff-after')).toContainText('结尾由编辑补写');
  await expect(compare.locator('ins').first()).toBeVisible();
  await page.screenshot({ path: path.join(SHOTS, 'rewrite-04-compare.png'), fullPage: false });
  await compare.getByTestId('run-compare-restore').click();
  await page.locator('.el-message-box').getByRole('button', { name: '恢复为当前' }).click();

  await expect(page.getByTestId('rewrite-editor')).toHaveValue(v1);
  await expect(history.locator('[data-testid="run-item"][data-source="restore"]')).toHaveCount(1);
  await expect(history.locator('[data-testid="run-item"][data-source="restore"]').getByTestId('run-current')).toBeVisible();
  project = await calls.project(projectId);
  stage = project.stages.find((s: { stage_type: string }) => s.stage_type === 'rewrite');
  expect(stage.output.rewritten_text).toBe(v1);
  await page.screenshot({ path: path.join(SHOTS, 'rewrite-05-restored.png'), fullPage: false });
});
