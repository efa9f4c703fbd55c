import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Locator, Page } from '@playwright/test';
import { expect, signIn, test } from './fixtures';

test.use({ locale: 'zh-CN', viewport: { width: 1440, height: 1000 } });

const SHOTS = path.join(import.meta.dirname, 'screenshots');
mkdirSync(SHOTS, { recursive: true });

/**
 * Picks `option` in an Element select and waits until the select shows it. On a loaded CI machine a
 * click on an option once landed while the dropdown was still opening and chose nothing; the pick is
 * what this spec is about, not that race, so it picks again until the select says so.
 */
async function choose(page: Page, select: Locator, option: string) {
  await expect(async () => {
    if (!(await page.getByRole('option', { name: option }).isVisible())) await select.click();
    await page.getByRole('option', { name: option }).click({ timeout: 2_000 });
    await expect(select).toContainText(option, { timeout: 1_000 });
  }).toPass({ timeout: 15_000 });
}

test('the provider form shows a media type its API shape and price per unit, and hides the LLM-only fields', async ({ page, context, studio }) => {
  await signIn(context, studio);
  await page.goto('/providers');
  await page.getByTestId('provider-add').click();
  const dialog = page.getByTestId('provider-dialog');
  await expect(dialog.getByText('最大输出 tokens')).toBeVisible();
  await expect(dialog.getByTestId('provider-format')).toHaveCount(0);

  await choose(page, page.getByTestId('provider-type'), '语音合成');
  await expect(dialog.getByTestId('provider-format')).toBeVisible();
  await expect(dialog.getByTestId('provider-format')).toContainText('OpenAI 语音');
  await expect(dialog.getByText('价格（每千字符）')).toBeVisible();
  await expect(dialog.getByText('最大输出 tokens')).toHaveCount(0);
  await expect(dialog.getByText('温度')).toHaveCount(0);
  await expect(dialog.getByText('输入价格（每百万 tokens）')).toHaveCount(0);
  await expect(dialog.getByTestId('provider-secret')).toHaveCount(0);
  await page.screenshot({ path: path.join(SHOTS, 'provider-form-tts.png') });

  // Kling signs with a key pair: the SecretKey field appears, and the price is per second of video.
  await choose(page, page.getByTestId('provider-type'), '图生视频');
  await expect(dialog.getByTestId('provider-format')).toContainText('可灵');
  await expect(dialog.getByTestId('provider-secret')).toBeVisible();
  await expect(dialog.getByText('价格（每秒视频）')).toBeVisible();
});
