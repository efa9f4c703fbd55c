import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Locator, Page } from '@playwright/test';
import { startFakeLlm, type FakeLlmServer } from '@ai-story/fake-llm';
import { expect, signIn, test, type Studio } from './fixtures';

test.use({ locale: 'zh-CN' });
test.describe.configure({ timeout: 240_000 });

const SHOTS = path.join(import.meta.dirname, 'screenshots');
mkdirSync(SHOTS, { recursive: true });

// A model slow enough (about 40 tokens/s) that shots and movements arrive seconds apart, so the
// page can be watched filling in; chosen explicitly in the forms, so other specs' providers on the
// shared studio do not change which model answers.
const SLOW_MODEL = 'fake-model?tps=40&ttft=200';
let upstream: FakeLlmServer;
test.beforeAll(async () => {
  upstream = await startFakeLlm();
});
test.afterAll(async () => {
  await upstream?.close();
});

const TOPIC =
  '雨夜，一只橘猫在街角发抖。小女孩撑伞走来，把它抱回了家。第二天清晨，阳光照进窗台，猫咪伸了个懒腰。女孩笑了，给它取名叫橘子。从那以后，每个雨夜，橘子都会趴在窗边，等女孩放学回家。';

interface ShotJson {
  id: string;
  sequence_number: number;
  scene_description: string;
  duration_seconds: number;
}

function api(page: Page, studio: Studio) {
  const headers = { origin: studio.baseURL };
  return {
    async createProject(name: string): Promise<string> {
      const res = await page.request.post('/api/v1/projects/', { data: { name, original_topic: TOPIC }, headers });
      expect(res.status()).toBe(201);
      return (await res.json()).id;
    },
    async slowProvider(): Promise<{ id: string; name: string }> {
      const name = `慢速分镜-${Date.now().toString(36)}`;
      const res = await page.request.post('/api/v1/models/providers/', {
        data: { name, api_url: upstream.url, api_key: 'sk-e2e-storyboard', model_name: SLOW_MODEL },
        headers,
      });
      expect(res.status()).toBe(201);
      return { id: (await res.json()).id, name };
    },
    async retire(providerId: string) {
      await page.request.patch(`/api/v1/models/providers/${providerId}/`, { data: { is_active: false }, headers });
    },
    async shots(projectId: string): Promise<ShotJson[]> {
      return (await (await page.request.get(`/api/v1/projects/${projectId}/storyboards/`)).json()).results;
    },
    async movements(projectId: string): Promise<{ shot_id: string; movement_type: string; params: { easing: string } }[]> {
      return (await (await page.request.get(`/api/v1/projects/${projectId}/camera-movements/`)).json()).results;
    },
    async stage(projectId: string, stage: string) {
      const project = await (await page.request.get(`/api/v1/projects/${projectId}/`)).json();
      return project.stages.find((s: { stage_type: string }) => s.stage_type === stage);
    },
    async run(runId: string) {
      return (await page.request.get(`/api/v1/runs/${runId}/`)).json();
    },
  };
}

async function choose(page: Page, selectTestId: string, label: string) {
  await page.getByTestId(selectTestId).click();
  await page.locator('.el-select-dropdown__item:visible', { hasText: label }).first().click();
}

const liveCards = (page: Page) => page.locator('[data-testid="shot-list"][data-live="true"] [data-testid="shot-card"]');
const savedCards = (page: Page) => page.locator('[data-testid="shot-list"]:not([data-live]) [data-testid="shot-card"]');
const cardIds = (page: Page) => savedCards(page).evaluateAll((els) => els.map((e) => e.getAttribute('data-shot-id')));
/** A box read twice, one animation frame apart, with the same result: nothing is still moving or scrolling. */
async function settledBox(locator: Locator) {
  let last = await locator.boundingBox();
  await expect
    .poll(async () => {
      await locator.page().evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
      const now = await locator.boundingBox();
      const same = JSON.stringify(now) === JSON.stringify(last);
      last = now;
      return same && now !== null;
    })
    .toBe(true);
  return last!;
}

test('storyboard cards arrive one at a time, a dragged card keeps its place after a reload, and the camera gives each card its movement', async ({ page, context, studio }) => {
  await signIn(context, studio);
  const calls = api(page, studio);
  const projectId = await calls.createProject('橘猫分镜');
  const provider = await calls.slowProvider();

  await page.goto(`/projects/${projectId}/storyboard`);
  // With no rewrite yet, the text to cut is the project's topic.
  await expect(page.getByTestId('storyboard-text')).toHaveValue(TOPIC);
  await expect(page.getByTestId('storyboard-empty')).toBeVisible();
  await choose(page, 'storyboard-provider', provider.name);
  await page.getByTestId('storyboard-generate').click();

  // Cards appear one at a time while the run is live: at least two different counts before done.
  const phase = page.getByTestId('storyboard-phase');
  const counts = new Set<number>();
  await expect
    .poll(
      async () => {
        const live = (await phase.getAttribute('data-phase')) ?? '';
        if (/running|connecting|queued/.test(live)) {
          const n = await liveCards(page).count();
          if (n > 0) counts.add(n);
        }
        return counts.size;
      },
      { timeout: 90_000, intervals: [200] },
    )
    .toBeGreaterThanOrEqual(2);
  await expect(page.getByTestId('shot-writing')).toBeVisible();
  await expect(page.getByTestId('stage-status-storyboard')).toHaveAttribute('data-status', 'running');
  await page.screenshot({ path: path.join(SHOTS, 'storyboard-01-streaming.png'), fullPage: true });

  await expect(phase).toHaveAttribute('data-phase', 'completed', { timeout: 120_000 });
  const saved = await calls.shots(projectId);
  expect(saved.length).toBeGreaterThanOrEqual(3);
  await expect(savedCards(page)).toHaveCount(saved.length);
  expect(await cardIds(page)).toEqual(saved.map((s) => s.id));
  const total = saved.reduce((sum, s) => sum + s.duration_seconds, 0);
  await expect(page.getByTestId('storyboard-count')).toContainText(String(saved.length));
  await expect(page.getByTestId('storyboard-total')).toContainText(String(Math.floor(total % 60)));
  await page.screenshot({ path: path.join(SHOTS, 'storyboard-02-done.png'), fullPage: true });

  // Inline edit: a bad duration is refused beside the field; a new scene is saved on Enter.
  const first = savedCards(page).first();
  await first.getByTestId('shot-duration').getByTestId('inline-display').click();
  await first.getByTestId('shot-duration').locator('input').fill('999');
  await first.getByTestId('shot-duration').locator('input').press('Enter');
  await expect(first.getByTestId('inline-error')).toContainText('0.5');
  await first.getByTestId('shot-duration').locator('input').fill('4.5');
  await first.getByTestId('shot-duration').locator('input').press('Enter');
  await expect(first.getByTestId('inline-error')).toHaveCount(0);
  await first.getByTestId('shot-scene').getByTestId('inline-display').click();
  await first.getByTestId('shot-scene').locator('textarea').fill('特写：湿漉漉的橘猫抬起头');
  await first.getByTestId('shot-scene').locator('textarea').press('Enter');
  await expect(first.getByTestId('shot-scene')).toContainText('特写：湿漉漉的橘猫抬起头');
  await expect.poll(async () => (await calls.shots(projectId))[0]).toMatchObject({ scene_description: '特写：湿漉漉的橘猫抬起头', duration_seconds: 4.5 });

  // Drag the third card to the top: the order is saved (numbers dense again) and survives a reload.
  // (A tall window keeps both cards on screen: the mouse only reaches what is visible.)
  // The pointer is pressed only once the layout has settled and the third card's handle is what lies under
  // it: measured mid-scroll, the press once landed on another card and dragged that one instead.
  await page.setViewportSize({ width: 1280, height: 1600 });
  await page.evaluate(() => window.scrollTo({ top: 0, behavior: 'instant' }));
  const before = await cardIds(page);
  const handle = savedCards(page).nth(2).getByTestId('shot-drag');
  const target = savedCards(page).first();
  const from = await settledBox(handle);
  const to = await settledBox(target);
  const press = { x: from.x + from.width / 2, y: from.y + from.height / 2 };
  expect(await page.evaluate(({ x, y }) => document.elementFromPoint(x, y)?.closest('[data-shot-id]')?.getAttribute('data-shot-id'), press)).toBe(before[2]);
  await page.mouse.move(press.x, press.y);
  await page.mouse.down();
  await page.mouse.move(from.x + from.width / 2, from.y - 20, { steps: 5 });
  await page.mouse.move(to.x + 40, to.y + 12, { steps: 20 });
  await page.mouse.move(to.x + 40, to.y + 6, { steps: 5 });
  await page.mouse.up();
  const expected = [before[2], before[0], before[1], ...before.slice(3)];
  await expect.poll(() => cardIds(page)).toEqual(expected);
  await expect.poll(async () => (await calls.shots(projectId)).map((s) => s.id), { timeout: 15_000 }).toEqual(expected);
  await page.reload();
  await expect(savedCards(page)).toHaveCount(saved.length);
  expect(await cardIds(page)).toEqual(expected);
  await expect(savedCards(page).getByTestId('shot-sequence')).toHaveText(expected.map((_, i) => `镜头 ${i + 1}`));

  // Camera: every card lights up with its movement as the run writes it.
  await page.getByTestId('stage-tab-camera').click();
  await expect(page.getByTestId('movement-card')).toHaveCount(saved.length);
  await expect(page.getByTestId('movement-none')).toHaveCount(saved.length);
  await choose(page, 'camera-provider', provider.name);
  await page.getByTestId('camera-generate').click();
  const withMovement = page.locator('[data-testid="movement-card"]:not([data-movement=""])');
  const seen = new Set<number>();
  await expect
    .poll(
      async () => {
        const n = await withMovement.count();
        if (n > 0 && n < saved.length) seen.add(n);
        return n;
      },
      { timeout: 90_000, intervals: [200] },
    )
    .toBe(saved.length);
  expect(seen.size).toBeGreaterThanOrEqual(1); // some cards had their movement while others still waited
  await expect(page.getByTestId('camera-phase')).toHaveAttribute('data-phase', 'completed', { timeout: 60_000 });
  const movements = await calls.movements(projectId);
  expect(movements).toHaveLength(saved.length);
  for (const m of movements) {
    await expect(page.locator(`[data-testid="movement-card"][data-shot-id="${m.shot_id}"]`)).toHaveAttribute('data-movement', m.movement_type);
  }
  await page.screenshot({ path: path.join(SHOTS, 'camera-01-done.png'), fullPage: true });

  // A hand edit of one movement: 推镜, and an easing.
  const card = page.getByTestId('movement-card').first();
  const shotId = (await card.getAttribute('data-shot-id'))!;
  await card.getByTestId('movement-type').click();
  await page.locator('.el-select-dropdown__item:visible', { hasText: '推镜' }).click();
  await expect(card).toHaveAttribute('data-movement', 'dolly_in');
  await card.getByTestId('movement-easing').click();
  await page.locator('.el-select-dropdown__item:visible', { hasText: '缓出' }).first().click();
  await expect
    .poll(async () => (await calls.movements(projectId)).find((m) => m.shot_id === shotId))
    .toMatchObject({ movement_type: 'dolly_in', params: { easing: 'ease_out' } });

  // Regenerating one shot runs the camera stage for that shot alone.
  const second = page.getByTestId('movement-card').nth(1);
  const secondId = (await second.getAttribute('data-shot-id'))!;
  await second.getByTestId('movement-regenerate').click();
  await expect(second.getByTestId('movement-waiting')).toBeVisible();
  await expect(page.getByTestId('movement-waiting')).toHaveCount(1);
  await expect(page.getByTestId('camera-phase')).toHaveAttribute('data-phase', 'completed', { timeout: 60_000 });
  const camera = await calls.stage(projectId, 'camera');
  expect((await calls.run(camera.current_run_id)).input).toEqual({ shot_ids: [secondId] });
  await expect(second).not.toHaveAttribute('data-movement', '');

  await calls.retire(provider.id);
});

test('a template edited on the Prompts page is the one the next storyboard run renders', async ({ page, context, studio }) => {
  await signIn(context, studio);
  const calls = api(page, studio);
  const projectId = await calls.createProject('模板试验');
  const marker = `【E2E 模板 ${Date.now().toString(36)}】镜头语言要克制。`;

  // A set of my own, copied from the default one.
  await page.goto('/prompts');
  await expect(page.getByTestId('prompt-set-title')).toBeVisible();
  await page.getByTestId('prompt-set-create').click();
  const setName = `我的分镜模板 ${Date.now().toString(36)}`;
  await page.getByTestId('prompt-set-name').fill(setName);
  await page.getByTestId('prompt-set-submit').click();
  await expect(page.getByTestId('prompt-set-title')).toHaveText(setName);
  await page.getByTestId('prompt-tab-storyboard').click();
  const editor = page.getByTestId('template-storyboard');
  await expect(editor.getByTestId('template-variable')).toHaveCount(6);
  const original = await editor.getByTestId('code-input').inputValue();
  expect(original).toContain('{{ text }}');

  // A variable the stage does not declare: marked in the preview, refused on save.
  await editor.getByTestId('code-input').fill(`{{ mood }}\n${original}`);
  await editor.getByTestId('template-preview').click();
  await expect(editor.getByTestId('preview-unknown')).toContainText('mood');
  await editor.getByTestId('template-save').click();
  await expect(editor.getByTestId('template-save-error')).toContainText('mood');

  // The marker line: previewed with the sample values, then saved as version 2.
  await editor.getByTestId('code-input').fill(`${marker}\n${original}`);
  await editor.getByTestId('template-preview').click();
  await expect(editor.getByTestId('preview-rendered')).toContainText(marker);
  await expect(editor.getByTestId('preview-rendered')).toContainText('雨夜，一只橘猫在街角发抖');
  await editor.getByTestId('template-save').click();
  await expect(editor.getByTestId('template-version')).toHaveText('v2');
  await expect(editor.getByTestId('template-unsaved')).toHaveCount(0);
  await expect(editor.getByTestId('template-version-item')).toHaveCount(2);
  await page.screenshot({ path: path.join(SHOTS, 'prompts-01-saved.png'), fullPage: true });

  // The project uses the new set (chosen in its header), and its next run renders the new template.
  await page.goto(`/projects/${projectId}/storyboard`);
  await page.getByTestId('project-prompt-set-select').click();
  await page.locator('.el-select-dropdown__item:visible', { hasText: setName }).click();
  await expect(page.getByTestId('project-prompt-set-select')).toContainText(setName);
  await choose(page, 'storyboard-provider', '离线演示');
  await page.getByTestId('storyboard-generate').click();
  await expect(page.getByTestId('storyboard-phase')).toHaveAttribute('data-phase', 'completed', { timeout: 120_000 });
  const stage = await calls.stage(projectId, 'storyboard');
  const run = await calls.run(stage.current_run_id);
  expect(run.prompt).toContain(marker);
  expect(run.prompt).toContain(TOPIC.slice(0, 12));

  // The history's details show the prompt the run used.
  const history = page.getByTestId('run-history');
  await history.getByTestId('run-item').first().getByTestId('run-view').click();
  const details = page.getByTestId('run-view-dialog');
  await details.getByTestId('run-view-prompt').locator('summary').click();
  await expect(details.getByTestId('run-view-prompt')).toContainText(marker);
  await expect(details.getByTestId('run-view-text')).toContainText('镜头 1');

  // Restoring version 1 brings the shipped text back as version 3.
  await page.goto('/prompts');
  await page.getByTestId('prompt-set-item').filter({ hasText: setName }).click();
  await page.getByTestId('prompt-tab-storyboard').click();
  await editor.locator('[data-testid="template-version-item"][data-version="1"]').getByTestId('template-version-restore').click();
  await page.locator('.el-message-box').getByRole('button', { name: '恢复' }).click();
  await expect(editor.getByTestId('template-version')).toHaveText('v3');
  await expect(editor.getByTestId('code-input')).toHaveValue(original);
});
