import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Page } from '@playwright/test';
import { ADMIN, expect, signIn, test } from './fixtures';

// The studio's first language is Chinese; a Chinese browser gets it without asking.
test.use({ locale: 'zh-CN', viewport: { width: 1440, height: 1000 } });

const SHOTS = path.join(import.meta.dirname, 'screenshots');
mkdirSync(SHOTS, { recursive: true });
const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: false });

const STAGES_ZH = ['文案改写', '分镜生成', '运镜生成', '文生图', '图生视频', '合成导出'];
const STAGES_EN = ['Rewrite', 'Storyboard', 'Camera', 'Images', 'Video', 'Export'];
const STAGE_KEYS = ['rewrite', 'storyboard', 'camera', 'image', 'video', 'export'];

test.describe('first start', () => {
  // Starting a studio of its own (a fresh database) is part of this test's time.
  test.describe.configure({ timeout: 180_000 });

  test('a first admin sets up the studio in the browser, signs in, creates a project and switches language', async ({ page, freshStudio }) => {
    const base = freshStudio.baseURL;
    const admin = { name: '林导演', email: 'director@example.com', password: 'first-admin-pass' };

    // A studio with no user sends every page to the first-admin setup.
    await page.goto(`${base}/projects`);
    await expect(page).toHaveURL(/\/setup$/);
    await expect(page.getByRole('heading', { name: '欢迎使用 AI Story' })).toBeVisible();
    await shot(page, 'foundation-01-setup');

    // The form checks itself before asking the server.
    await page.getByTestId('setup-submit').click();
    await expect(page.getByText('请填写名字')).toBeVisible();
    await page.getByTestId('setup-name').fill(admin.name);
    await page.getByTestId('setup-email').fill('not-an-email');
    await page.getByTestId('setup-password').fill('short');
    await page.getByTestId('setup-submit').click();
    await expect(page.getByText('请输入有效的邮箱地址')).toBeVisible();
    await expect(page.getByText('密码至少 8 个字符')).toBeVisible();

    await page.getByTestId('setup-email').fill(admin.email);
    await page.getByTestId('setup-password').fill(admin.password);
    await page.getByTestId('setup-confirm').fill(admin.password);
    await page.getByTestId('setup-submit').click();
    await expect(page).toHaveURL(/\/projects$/);
    await expect(page.getByTestId('projects-empty')).toBeVisible();
    await shot(page, 'foundation-02-empty-projects');

    // Sign out, then back in through the form.
    await page.getByTestId('user-menu').click();
    await page.getByTestId('sign-out').click();
    await expect(page).toHaveURL(/\/login/);
    await page.getByTestId('login-email').fill(admin.email);
    await page.getByTestId('login-password').fill('wrong-password');
    await page.getByTestId('login-submit').click();
    await expect(page.getByTestId('login-error')).toContainText('邮箱或密码不正确');
    await page.getByTestId('login-password').fill(admin.password);
    await shot(page, 'foundation-03-login');
    await page.getByTestId('login-submit').click();
    await expect(page).toHaveURL(/\/projects$/);

    // Create a project; an empty name is refused in words.
    await page.getByTestId('new-project').click();
    const dialog = page.getByTestId('project-dialog');
    await expect(dialog).toBeVisible();
    await page.getByTestId('project-dialog-submit').click();
    await expect(dialog.getByText('请填写项目名称')).toBeVisible();
    await page.getByTestId('project-name-input').fill('三分钟讲清黑洞');
    await page
      .getByTestId('project-topic-input')
      .fill('黑洞是时空中引力极强的区域，连光都无法逃脱。从恒星坍缩讲起，介绍事件视界、霍金辐射，以及 2019 年人类拍到的第一张黑洞照片。');
    await shot(page, 'foundation-04-create-dialog');
    await page.getByTestId('project-dialog-submit').click();

    // Creating opens the project: its name, status and the seven stages.
    await expect(page).toHaveURL(/\/projects\/[0-9a-f-]{36}/);
    await expect(page.getByTestId('project-title')).toHaveText('三分钟讲清黑洞');
    await expect(page.getByTestId('project-detail').getByTestId('project-status')).toHaveText('草稿');
    for (const [i, key] of STAGE_KEYS.entries()) {
      await expect(page.getByTestId(`stage-tab-${key}`)).toHaveText(STAGES_ZH[i]);
      await expect(page.getByTestId(`stage-status-${key}`)).toContainText('待开始');
    }
    // Every stage has its tab now: the last one, the export, opens on its settings.
    await page.getByTestId('stage-tab-export').click();
    await expect(page).toHaveURL(/\/export$/);
    await expect(page.getByTestId('export-subtitle-mode')).toBeVisible();
    await expect(page.getByTestId('coming-soon-export')).toHaveCount(0);
    await shot(page, 'foundation-05-project-detail');

    // The list shows it; opening it from there lands on the same project.
    await page.getByTestId('back-to-projects').click();
    const card = page.getByTestId('project-card').filter({ hasText: '三分钟讲清黑洞' });
    await expect(card).toBeVisible();
    await expect(card.getByTestId('project-status')).toHaveText('草稿');
    await shot(page, 'foundation-06-project-list');
    await card.getByTestId('project-open').click();
    await expect(page.getByTestId('project-title')).toHaveText('三分钟讲清黑洞');

    // Language: English, kept across a reload, then back to Chinese.
    await page.getByTestId('locale-switch').click();
    await page.getByTestId('locale-option-en').click();
    for (const [i, key] of STAGE_KEYS.entries()) await expect(page.getByTestId(`stage-tab-${key}`)).toHaveText(STAGES_EN[i]);
    await expect(page.getByTestId('back-to-projects')).toHaveText('All projects');
    await expect(page.getByTestId('project-detail').getByTestId('project-status')).toHaveText('Draft');
    await shot(page, 'foundation-07-project-detail-en');
    await page.reload();
    await expect(page.getByTestId('stage-tab-rewrite')).toHaveText('Rewrite');
    expect(await page.evaluate(() => localStorage.getItem('ai-story.locale'))).toBe('en');

    await page.getByTestId('locale-switch').click();
    await page.getByTestId('locale-option-zh-CN').click();
    await expect(page.getByTestId('stage-tab-rewrite')).toHaveText('文案改写');
    await expect(page.getByTestId('back-to-projects')).toHaveText('全部项目');
  });
});

test('projects can be searched, renamed and deleted after a confirmation', async ({ page, context, studio }) => {
  await signIn(context, studio);
  const api = page.request;
  const unique = Date.now().toString(36);
  for (const name of [`星空日记-${unique}`, `深海怪谈-${unique}`]) {
    const res = await api.post('/api/v1/projects/', { data: { name, original_topic: '一个关于夜空与海洋的短视频选题' }, headers: { origin: studio.baseURL } });
    expect(res.status()).toBe(201);
  }

  await page.goto('/projects');
  await page.getByTestId('project-search').fill(`星空日记-${unique}`);
  await expect(page.getByTestId('project-card')).toHaveCount(1);
  await expect(page).toHaveURL(/q=/);

  // Rename through the card's menu.
  const card = page.getByTestId('project-card').first();
  await card.getByTestId('project-menu').click();
  await page.getByTestId('project-rename').filter({ visible: true }).click();
  await page.getByTestId('project-name-input').fill(`星空手记-${unique}`);
  await page.getByTestId('project-dialog-submit').click();
  await expect(page.getByText('已重命名')).toBeVisible();

  // The list follows the new name; nothing matches the old one any more.
  await page.getByTestId('project-search').fill(`星空手记-${unique}`);
  await expect(page.getByTestId('project-card')).toHaveCount(1);
  await expect(page.getByTestId('project-card').getByTestId('project-name')).toHaveText(`星空手记-${unique}`);
  await page.getByTestId('project-search').fill(`星空日记-${unique}`);
  await expect(page.getByTestId('projects-empty-search')).toBeVisible();

  // Delete asks first; cancelling keeps the project.
  await page.getByTestId('project-search').fill(`深海怪谈-${unique}`);
  await expect(page.getByTestId('project-card')).toHaveCount(1);
  await page.getByTestId('project-card').getByTestId('project-menu').click();
  await page.getByTestId('project-delete').filter({ visible: true }).click();
  const confirm = page.locator('.el-message-box');
  await expect(confirm).toContainText(`深海怪谈-${unique}`);
  await confirm.getByRole('button', { name: '取消' }).click();
  await expect(page.getByTestId('project-card')).toHaveCount(1);

  await page.getByTestId('project-card').getByTestId('project-menu').click();
  await page.getByTestId('project-delete').filter({ visible: true }).click();
  await page.locator('.el-message-box').getByRole('button', { name: '删除项目' }).click();
  await expect(page.getByTestId('projects-empty-search')).toBeVisible();
  const list = await (await api.get(`/api/v1/projects/?search=${encodeURIComponent(`深海怪谈-${unique}`)}`)).json();
  expect(list.count).toBe(0);
});

test('a project deleted in another tab takes its open page back to the list, saying it was deleted; deleted from the page, it says so once', async ({ page, context, studio }) => {
  await signIn(context, studio);
  const newProject = async (name: string) => {
    const res = await page.request.post('/api/v1/projects/', { data: { name, original_topic: '一个关于雨夜的短视频选题' }, headers: { origin: studio.baseURL } });
    return ((await res.json()) as { id: string }).id;
  };
  const live = page.locator('.live:not(.off)');

  const elsewhere = await newProject(`雨夜-${Date.now().toString(36)}`);
  await page.goto(`/projects/${elsewhere}`);
  await expect(live).toBeVisible(); // its stream is open
  expect((await page.request.delete(`/api/v1/projects/${elsewhere}/`, { headers: { origin: studio.baseURL } })).status()).toBe(204);
  await expect(page.getByText('这个项目已被删除。')).toBeVisible();
  await expect(page).toHaveURL(/\/projects$/);
  await expect(page.getByText('你对这个项目的访问权限已被移除。')).toHaveCount(0);

  const here = await newProject(`晴天-${Date.now().toString(36)}`);
  await page.goto(`/projects/${here}`);
  await expect(live).toBeVisible();
  await page.getByTestId('project-detail-menu').click();
  await page.getByTestId('project-detail-delete').filter({ visible: true }).click();
  await page.locator('.el-message-box').getByRole('button', { name: '删除项目' }).click();
  await expect(page.getByText('项目已删除')).toBeVisible();
  await expect(page).toHaveURL(/\/projects$/);
  await expect(page.getByText('这个项目已被删除。')).toHaveCount(0);
});

test('an API token is shown once, listed by its prefix and can be revoked', async ({ page, context, studio }) => {
  await signIn(context, studio);
  await page.goto('/account');
  await page.getByTestId('token-create').click();
  await page.getByTestId('token-name').fill('发布脚本');
  await page.getByTestId('token-create-submit').click();

  const secret = (await page.getByTestId('token-secret').textContent())?.trim() ?? '';
  expect(secret.length).toBeGreaterThan(20);
  await shot(page, 'foundation-08-token-created');
  await page.getByTestId('token-created-done').click();

  // The token works as a Bearer credential, and the list never shows it in full.
  const me = await page.request.get('/api/v1/auth/me', { headers: { authorization: `Bearer ${secret}` } });
  expect(me.status()).toBe(200);
  const row = page.getByTestId('token-table').locator('tr', { hasText: '发布脚本' });
  await expect(row).toBeVisible();
  await expect(page.getByTestId('api-tokens')).not.toContainText(secret);

  await row.getByTestId('token-revoke').click();
  await page.locator('.el-message-box').getByRole('button', { name: '吊销' }).click();
  await expect(row).toHaveCount(0);
  const after = await page.request.get('/api/v1/auth/me', { headers: { authorization: `Bearer ${secret}` }, failOnStatusCode: false });
  expect(after.status()).toBe(401);
});

test('an admin adds a user, changes their role, and opens registration', async ({ page, context, studio, newPage }) => {
  await signIn(context, studio);
  await page.goto('/users');
  const email = `editor-${Date.now().toString(36)}@example.com`;
  await page.getByTestId('user-create').click();
  await page.getByTestId('user-name').fill('小周');
  await page.getByTestId('user-email').fill(email);
  await page.getByTestId('user-password').fill('short');
  await page.getByTestId('user-submit').click();
  await expect(page.getByTestId('user-dialog')).toContainText('密码至少 8 个字符');
  await page.getByTestId('user-password').fill('editor-password');
  await page.getByTestId('user-submit').click();

  const row = page.getByTestId('users-table').locator('tr', { hasText: email });
  await expect(row).toBeVisible();
  await row.getByTestId('user-role-select').click();
  await page.locator('.el-select-dropdown__item:visible', { hasText: '管理员' }).click();
  await expect(page.getByText('角色已更新')).toBeVisible();
  await shot(page, 'foundation-09-users');

  // Registration: closed by default, then open for a visitor.
  const visitor = await newPage();
  await visitor.goto('/register');
  await expect(visitor.getByTestId('register-closed')).toBeVisible();
  await page.getByTestId('allow-registration').click();
  await expect(page.getByText('已开放注册')).toBeVisible();
  await visitor.reload();
  await expect(visitor.getByTestId('register-form')).toBeVisible();
  await page.getByTestId('allow-registration').click();
  await expect(page.getByText('已关闭注册')).toBeVisible();

  // The new admin can sign in and sees the admin pages.
  const other = await newPage({ email, password: 'editor-password' });
  await other.goto('/users');
  await expect(other.getByTestId('users-page')).toBeVisible();
  expect(ADMIN.email).not.toBe(email);
});

test("an admin sees a user's API token and revokes it: the user's script loses access at once", async ({ page, context, studio, newPage }) => {
  await signIn(context, studio);
  const email = `scripter-${Date.now().toString(36)}@example.com`;
  const made = await page.request.post('/api/v1/users/', { data: { name: '小林', email, password: 'scripter-password', role: 'user' }, headers: { origin: studio.baseURL } });
  expect(made.status()).toBe(201);
  const other = await newPage({ email, password: 'scripter-password' });
  const created = await other.request.post('/api/v1/auth/tokens', { data: { name: '剪辑脚本' }, headers: { origin: studio.baseURL } });
  expect(created.status()).toBe(201);
  const { token } = (await created.json()) as { token: string };
  const asScript = () => page.request.get('/api/v1/auth/me', { headers: { authorization: `Bearer ${token}` }, failOnStatusCode: false });
  expect(await (await asScript()).json()).toMatchObject({ email });

  await page.goto('/users');
  const row = page.getByTestId('users-table').locator('tr', { hasText: email });
  await row.getByTestId('user-tokens-open').click();
  const dialog = page.getByTestId('user-tokens');
  await expect(dialog.getByTestId('user-token-table')).toContainText('剪辑脚本');
  await shot(page, 'foundation-10-user-tokens');
  await dialog.getByTestId('token-revoke').click();
  await page.locator('.el-message-box').getByRole('button', { name: '吊销' }).click();
  await expect(page.getByText('令牌已吊销')).toBeVisible();
  await expect(dialog).toContainText('这个用户没有 API 令牌');
  expect((await asScript()).status()).toBe(401);
});

test('the API documentation renders under the studio’s Content-Security-Policy', async ({ page }) => {
  // The fixture fails the test on any CSP violation the page reports.
  const res = await page.goto('/docs');
  expect(res?.headers()['content-security-policy']).toContain("script-src 'self'");
  // swagger-ui renders the operations from /docs/json with its own scripts: slow on a busy machine.
  await expect(page.locator('.swagger-ui .opblock').first()).toBeVisible({ timeout: 30_000 });
  await expect(page.getByText('AI Story API')).toBeVisible();
});
