import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { startFakeLlm, type FakeLlmServer } from '@ai-story/fake-llm';
import { expect, signIn, test } from './fixtures';

test.use({ locale: 'zh-CN', viewport: { width: 1440, height: 1000 } });

const SHOTS = path.join(import.meta.dirname, 'screenshots');
mkdirSync(SHOTS, { recursive: true });

let upstream: FakeLlmServer;
test.beforeAll(async () => {
  upstream = await startFakeLlm();
});
test.afterAll(async () => {
  await upstream?.close();
});

test('an admin adds a provider pointing at the simulated upstream, tests it and sees it answer', async ({ page, context, studio }) => {
  await signIn(context, studio);
  await page.goto('/providers');

  // With no key configured the studio offers its offline demo model, labelled as simulated.
  const demo = page.getByTestId('provider-card').filter({ has: page.getByTestId('provider-simulated') });
  await expect(demo).toHaveCount(1);
  await expect(demo.getByTestId('provider-simulated')).toHaveText('离线演示');

  // The form refuses what the API would refuse, in words, before sending.
  await page.getByTestId('provider-add').click();
  const dialog = page.getByTestId('provider-dialog');
  await page.getByTestId('provider-url').fill('ftp://example.com');
  await page.getByTestId('provider-submit').click();
  await expect(dialog).toContainText('请填写名称');
  await expect(dialog).toContainText('请输入以 http:// 或 https:// 开头的地址');

  const name = `本地模拟-${Date.now().toString(36)}`;
  await page.getByTestId('provider-name').fill(name);
  await page.getByTestId('provider-url').fill(upstream.url);
  await page.getByTestId('provider-key').fill('sk-e2e-secret-key-4321');
  await page.getByTestId('provider-model').fill('fake-model');
  await page.getByTestId('provider-submit').click();
  await expect(dialog).toBeHidden();

  const card = page.getByTestId('provider-card').filter({ hasText: name });
  await expect(card).toBeVisible();
  await expect(card.getByTestId('provider-card-model')).toHaveText('fake-model');
  await expect(card.getByTestId('provider-health')).toContainText('未测试');

  // Test connection: ok, with the latency and the server's own sentence.
  await card.getByTestId('provider-test').click();
  await expect(card.getByTestId('provider-health-status')).toContainText('连接正常');
  await expect(card.getByTestId('provider-health-status')).toContainText('ms');
  await expect(card.getByTestId('provider-health-message')).toContainText('fake-model');
  await page.screenshot({ path: path.join(SHOTS, 'providers-01-tested.png'), fullPage: false });

  // The key never comes back: editing shows only its hint, and leaving the field empty keeps it.
  await card.getByTestId('provider-edit').click();
  const key = page.getByTestId('provider-key');
  await expect(key).toHaveValue('');
  await expect(key).toHaveAttribute('placeholder', /4321/);
  await expect(page.locator('body')).not.toContainText('sk-e2e-secret-key-4321');
  await page.getByTestId('provider-model').fill('fake-model?quirk=bad_key');
  await page.getByTestId('provider-submit').click();
  await expect(dialog).toBeHidden();

  // A failing test says what is wrong.
  await card.getByTestId('provider-test').click();
  await expect(card.getByTestId('provider-health-status')).toContainText('连接失败');
  await expect(card.getByTestId('provider-health-message')).toContainText('401');
  await page.screenshot({ path: path.join(SHOTS, 'providers-02-failed.png'), fullPage: false });

  // Switching off, then deleting after a confirmation.
  await card.getByTestId('provider-active').click();
  await expect(page.getByText('已停用')).toBeVisible();
  const listed = await (await page.request.get('/api/v1/models/providers/')).json();
  expect(listed.find((p: { name: string }) => p.name === name).is_active).toBe(false);

  await card.getByTestId('provider-delete').click();
  await page.locator('.el-message-box').getByRole('button', { name: '删除' }).click();
  await expect(card).toHaveCount(0);
});
