import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Page } from '@playwright/test';
import sharp from 'sharp';
import { startFakeLlm, type FakeLlmServer } from '@ai-story/fake-llm';
import { expect, signIn, test } from './fixtures';

test.use({ locale: 'zh-CN' });
test.describe.configure({ timeout: 240_000 });

const SHOTS = path.join(import.meta.dirname, 'screenshots');
mkdirSync(SHOTS, { recursive: true });

let upstream: FakeLlmServer;
test.beforeAll(async () => {
  upstream = await startFakeLlm();
});
test.afterAll(async () => {
  await upstream?.close();
});

const TOPIC = '雨夜的城市，老人在街角修钟表。一个女孩推门进来。黄昏，两人走到海边。灯塔亮起来。第二天清晨，森林里的小屋飘着炊烟。夜里，满天星星。';

/** Cards with at least one picture in them. */
const filledCards = (page: Page) =>
  page.locator('[data-testid^="image-card-"]').evaluateAll((cards) => cards.filter((c) => c.querySelector('[data-testid^="image-thumb-"] img')).length);

/** A project whose storyboard the simulated LLM wrote with `shots` shots. */
async function projectWithStoryboard(page: Page, studio: { baseURL: string }, name: string, shots: number): Promise<string> {
  const headers = { origin: studio.baseURL };
  const project = (await (await page.request.post('/api/v1/projects/', { data: { name, original_topic: TOPIC }, headers })).json()).id as string;
  const llm = (await (await page.request.post('/api/v1/models/providers/', { data: { name: `${name}-${Date.now().toString(36)}`, api_url: upstream.url, api_key: 'sk-e2e', model_name: 'fake-model?tps=2000' }, headers })).json()).id;
  const board = await (await page.request.post(`/api/v1/projects/${project}/stages/storyboard/runs/`, { data: { input: { shot_count: shots }, provider_id: llm }, headers })).json();
  await expect.poll(async () => (await (await page.request.get(`/api/v1/runs/${board.id}/`)).json()).status, { timeout: 60_000 }).toBe('completed');
  return project;
}

test('generate every shot offline: thumbnails fill the cards one by one and survive a reload mid-run; pick a candidate; upload an image', async ({ page, context, studio }) => {
  await signIn(context, studio);
  const headers = { origin: studio.baseURL };
  const project = await projectWithStoryboard(page, studio, '钟表匠', 8);
  // Four candidates per shot: 32 offline pictures, long enough to watch the cards fill and to reload mid-run.
  expect((await page.request.patch(`/api/v1/projects/${project}/stages/image/settings/`, { data: { candidates: 4 }, headers })).status()).toBe(200);

  await page.goto(`/projects/${project}/image`);
  await expect(page.getByTestId('image-card-8')).toBeVisible();
  await expect(page.getByTestId('image-estimate')).toContainText('32');
  await page.screenshot({ path: path.join(SHOTS, 'images-before.png'), fullPage: true });
  // Every count of filled cards the page ever shows, recorded in the page itself: polling from here
  // can miss a fast run's middle, the page's own DOM changes cannot.
  await page.evaluate(() => {
    const counts = new Set<number>();
    const overall = new Set<string>();
    const count = () => [...document.querySelectorAll('[data-testid^="image-card-"]')].filter((c) => c.querySelector('[data-testid^="image-thumb-"] img')).length;
    new MutationObserver(() => {
      counts.add(count());
      overall.add(document.querySelector('[data-testid="image-count"]')?.textContent?.trim() ?? '');
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
    Object.assign(window, { filledCounts: counts, overallCounts: overall });
  });
  await page.getByTestId('image-generate').click();

  // Cards fill one at a time: the page showed some filled while others were still waiting.
  await expect.poll(() => filledCards(page), { timeout: 60_000, intervals: [100] }).toBeGreaterThan(0);
  const before = await filledCards(page);
  const seen = await page.evaluate(() => {
    const w = window as unknown as { filledCounts: Set<number>; overallCounts: Set<string> };
    return { cards: [...w.filledCounts], overall: [...w.overallCounts] };
  });
  expect(seen.cards.filter((n) => n > 0 && n < 8).length, `cards filled: ${seen.cards.join(', ')}`).toBeGreaterThan(0);
  expect(seen.overall.some((text) => /\d+\s*\/\s*8 张/.test(text)), `overall: ${seen.overall.join(' | ')}`).toBe(true);
  // The studio's own offline model is named in the reader's language, not the server's English.
  await expect(page.getByTestId('image-info')).toContainText('使用 离线图片模型（offline-image）生成');
  await page.screenshot({ path: path.join(SHOTS, 'images-running.png'), fullPage: true });

  // A reload mid-run keeps what was made and follows the rest.
  await page.reload();
  await expect.poll(() => filledCards(page), { timeout: 30_000 }).toBeGreaterThanOrEqual(before);
  await expect.poll(() => filledCards(page), { timeout: 120_000 }).toBe(8);
  await expect(page.getByTestId('image-phase')).toHaveAttribute('data-phase', 'completed', { timeout: 60_000 });
  await expect(page.getByTestId('image-thumb-1')).toHaveCount(4);
  await page.screenshot({ path: path.join(SHOTS, 'images-done.png'), fullPage: true });

  // Pick the second candidate of shot 1: it becomes the one in use, no new version.
  await page.getByTestId('image-card-1').getByTestId('image-pick-1').first().click();
  await expect.poll(async () => {
    const stage = (await (await page.request.get(`/api/v1/projects/${project}/stages/`)).json()).find((s: { stage_type: string }) => s.stage_type === 'image');
    return stage.output.images.filter((i: { shot_id: string; chosen: boolean }) => i.chosen).length;
  }).toBe(8);
  const thumbs1 = page.getByTestId('image-card-1').getByTestId('image-thumb-1');
  await expect(thumbs1.nth(1)).toHaveClass(/chosen/);
  await expect(thumbs1.nth(0)).not.toHaveClass(/chosen/);

  // Upload a PNG named .jpg to shot 2: a fifth picture, picked.
  const png = await sharp({ create: { width: 72, height: 128, channels: 3, background: '#c0392b' } }).png().toBuffer();
  await page.getByTestId('image-upload-2').setInputFiles({ name: 'mine.jpg', mimeType: 'image/jpeg', buffer: png });
  const thumbs2 = page.getByTestId('image-card-2').getByTestId('image-thumb-2');
  await expect(thumbs2).toHaveCount(5);
  await expect(thumbs2.nth(4)).toHaveClass(/chosen/);
  await page.screenshot({ path: path.join(SHOTS, 'images-picked.png'), fullPage: true });
});

test('a character gets a picture from the project\'s images or an upload, and loses it again', async ({ page, context, studio }) => {
  await signIn(context, studio);
  const headers = { origin: studio.baseURL };
  const project = await projectWithStoryboard(page, studio, '定妆照', 3);
  const images = await (await page.request.post(`/api/v1/projects/${project}/stages/image/runs/`, { data: { input: {} }, headers })).json();
  await expect.poll(async () => (await (await page.request.get(`/api/v1/runs/${images.id}/`)).json()).status, { timeout: 120_000 }).toBe('completed');
  const characters = async () => (await (await page.request.get(`/api/v1/projects/${project}/characters/`)).json()).characters as { name: string; look: string; image_media_id?: string | null }[];

  await page.goto(`/projects/${project}/image`);
  await expect(page.getByTestId('image-card-3')).toBeVisible();
  // The model proposes the story's people with their looks.
  await page.getByTestId('image-suggest').click();
  // Said in the reader's language, not in the server's words.
  await expect(page.getByText('模型已根据故事提出角色')).toBeVisible();
  const rows = page.getByTestId('image-character');
  await expect(rows.first().locator('input').first()).toHaveValue('老人');
  await expect(rows.first().locator('input').nth(1)).not.toHaveValue('');

  // Pick one of the project's images as 老人's picture: saved at once, shown in the row.
  await rows.first().getByTestId('image-character-picture').click();
  const picks = page.getByTestId('image-character-pick').filter({ visible: true });
  await expect(picks).toHaveCount(3);
  await picks.first().click();
  const chosen = (await (await page.request.get(`/api/v1/projects/${project}/stages/`)).json()).find((s: { stage_type: string }) => s.stage_type === 'image').output.images.filter((i: { chosen: boolean }) => i.chosen).map((i: { media_id: string }) => i.media_id);
  await expect.poll(async () => (await characters()).find((c) => c.name === '老人')?.image_media_id).toBe(chosen[0]);
  await expect(rows.first().getByTestId('image-character-picture').locator('img')).toHaveAttribute('src', `/api/v1/media/${chosen[0]}`);
  await page.screenshot({ path: path.join(SHOTS, 'images-character-picture.png'), fullPage: true });

  // Remove it, then upload one of the creator's own.
  await page.getByTestId('image-character-picture-clear').filter({ visible: true }).click();
  await expect.poll(async () => (await characters()).find((c) => c.name === '老人')?.image_media_id ?? null).toBeNull();
  await expect(rows.first().getByTestId('image-character-picture').locator('img')).toHaveCount(0);
  const png = await sharp({ create: { width: 80, height: 80, channels: 3, background: '#2e86c1' } }).png().toBuffer();
  await rows.first().getByTestId('image-character-picture').click();
  await page.getByTestId('image-character-upload').first().setInputFiles({ name: 'laoren.png', mimeType: 'image/png', buffer: png });
  await expect.poll(async () => (await characters()).find((c) => c.name === '老人')?.image_media_id ?? null).not.toBeNull();
  const uploaded = (await characters()).find((c) => c.name === '老人')!.image_media_id!;
  expect(chosen).not.toContain(uploaded);
  expect(Buffer.from(await (await page.request.get(`/api/v1/media/${uploaded}`)).body())).toEqual(png);
  await expect(rows.first().getByTestId('image-character-picture').locator('img')).toHaveAttribute('src', `/api/v1/media/${uploaded}`);
});
