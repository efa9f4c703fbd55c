import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { expect, signIn, test } from './fixtures';

test.use({ locale: 'zh-CN' });
test.describe.configure({ timeout: 240_000 });

const SHOTS_DIR = path.join(import.meta.dirname, 'screenshots');
mkdirSync(SHOTS_DIR, { recursive: true });

const NARRATION = ['雨夜里，一只橘猫在街角发抖。小女孩撑着红伞走来。', '她蹲下身子，轻轻把猫抱进怀里。'];

test('narration offline: every shot gets a voice, one plays, a subtitle line is edited, a longer sentence lengthens its shot', async ({ page, context, studio }) => {
  await signIn(context, studio);
  const headers = { origin: studio.baseURL };
  const created = await page.request.post('/api/v1/projects/', { data: { name: '配音测试', original_topic: NARRATION.join('') }, headers });
  expect(created.status()).toBe(201);
  const projectId = (await created.json()).id as string;
  for (const text of NARRATION) {
    expect((await page.request.post(`/api/v1/projects/${projectId}/storyboards/`, { data: { narration_text: text, scene_description: text }, headers })).status()).toBe(201);
  }

  await page.goto(`/projects/${projectId}/narration`);
  await expect(page.getByTestId('narration-offline')).toBeVisible();
  await page.getByTestId('narration-generate').click();
  await expect(page.getByTestId('narration-phase')).toHaveText('已完成', { timeout: 120_000 });
  await expect(page.getByTestId('shot-audio')).toHaveCount(NARRATION.length);
  await expect(page.getByTestId('subtitle-text').first()).toBeVisible();
  await page.screenshot({ path: path.join(SHOTS_DIR, 'narration-zh.png'), fullPage: true });

  // Play the first shot: its audio element really plays (time moves on).
  const audio = page.getByTestId('shot-audio').first();
  await audio.evaluate((el: HTMLAudioElement) => {
    el.muted = true;
    return el.play();
  });
  await expect.poll(() => audio.evaluate((el: HTMLAudioElement) => el.currentTime), { timeout: 15_000 }).toBeGreaterThan(0.2);
  await audio.evaluate((el: HTMLAudioElement) => el.pause());

  // Edit a subtitle line: saved, and still there after a reload.
  await page.getByTestId('subtitle-text').first().click();
  await page.getByTestId('subtitle-input').fill('雨夜，街角');
  await page.getByTestId('subtitle-input').press('Enter');
  await expect(page.getByTestId('subtitle-text').first()).toHaveText('雨夜，街角');
  await page.reload();
  await expect(page.getByTestId('subtitle-text').first()).toHaveText('雨夜，街角');

  // A much longer second sentence of shot 1, spoken again: the shot's length grows.
  const shot1 = page.getByTestId('narration-shot-1');
  const before = await shot1.getByTestId('shot-length').textContent();
  await shot1.getByTestId('sentence-1').getByTestId('sentence-edit').click();
  await shot1.getByTestId('sentence-input').fill('一个撑着红色雨伞的小女孩，慢慢地从长长的巷子尽头走了过来，停在小猫面前。');
  await shot1.getByTestId('sentence-save').click();
  await expect(page.getByTestId('narration-phase')).toHaveText('已完成', { timeout: 120_000 });
  await expect(shot1.getByTestId('shot-length')).not.toHaveText(before!, { timeout: 15_000 });
  const seconds = (s: string | null) => Number(/([\d.]+)/.exec(s ?? '')?.[1]);
  expect(seconds(await shot1.getByTestId('shot-length').textContent())).toBeGreaterThan(seconds(before));
  await expect(shot1.getByTestId('sentence-1')).toContainText('停在小猫面前');
  await page.screenshot({ path: path.join(SHOTS_DIR, 'narration-edited-zh.png'), fullPage: true });
});
