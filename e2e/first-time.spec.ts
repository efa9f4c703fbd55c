import type { Page } from '@playwright/test';
import { expect, signIn, test, type Studio } from './fixtures';

// What a first-time creator meets, on a phone (390×844) in both languages.
test.describe.configure({ timeout: 120_000 });

const LONG_NAME = '灯塔守护人与鲸鱼之歌'.repeat(20); // 200 characters, the most a name may have

async function createProject(page: Page, studio: Studio, name: string, topic = '灯塔守护人阿海在暴风雨的夜里救起一头迷路的鲸鱼，把它送回了大海。') {
  const res = await page.request.post('/api/v1/projects/', { data: { name, original_topic: topic }, headers: { origin: studio.baseURL } });
  expect(res.status()).toBe(201);
  return (await res.json()).id as string;
}

/** The lines an element's content takes: its boxes grouped by row (an icon and text on one row count once). */
const lineTops = (page: Page, selector: string) =>
  page.locator(selector).first().evaluate((el) => {
    const range = document.createRange();
    range.selectNodeContents(el);
    const rects = [...range.getClientRects()].filter((r) => r.width > 0).sort((a, b) => a.top - b.top);
    const rows: DOMRect[] = [];
    for (const r of rects) if (!rows.length || r.top >= rows[rows.length - 1].top + rows[rows.length - 1].height / 2) rows.push(r);
    return rows.map((r) => Math.round(r.top));
  });

for (const locale of ['zh-CN', 'en'] as const) {
  test.describe(`on a phone in ${locale}`, () => {
    test.use({ locale, viewport: { width: 390, height: 844 } });

    test('the header keeps its buttons and its long name on one line, and no stage name is cut', async ({ page, context, studio }) => {
      await signIn(context, studio);
      const id = await createProject(page, studio, LONG_NAME);
      await page.goto(`/projects/${id}`);
      const title = page.getByTestId('project-title');
      await expect(title).toHaveAttribute('title', LONG_NAME);
      // One line: the title's box is no taller than one line of its text.
      expect(await lineTops(page, '[data-testid="project-title"]')).toHaveLength(1);
      const titleBox = (await title.boundingBox())!;
      expect(titleBox.x + titleBox.width).toBeLessThanOrEqual(390);

      // The split button: both halves side by side on one row, its label on one line.
      const halves = page.locator('[data-testid="pipeline-execute-menu"] .el-button-group > .el-button');
      await expect(halves).toHaveCount(2);
      const [main, arrow] = [(await halves.nth(0).boundingBox())!, (await halves.nth(1).boundingBox())!];
      expect(Math.abs(main.y - arrow.y)).toBeLessThanOrEqual(1);
      expect(arrow.x).toBeGreaterThanOrEqual(main.x + main.width - 1);
      expect(await lineTops(page, '[data-testid="pipeline-execute"]')).toHaveLength(1);
      expect(main.x + main.width + arrow.width).toBeLessThanOrEqual(390);
      // Every button of the header on that same row, inside the screen.
      const buttons = await page.locator('.head-actions > *').evaluateAll((els) => els.map((el) => el.getBoundingClientRect().toJSON() as DOMRect));
      expect(buttons.length).toBeGreaterThanOrEqual(3);
      for (const b of buttons) {
        expect(Math.abs(b.top + b.height / 2 - (main.y + main.height / 2))).toBeLessThanOrEqual(2);
        expect(b.right).toBeLessThanOrEqual(390);
      }

      // Every stage's name is shown whole: its box is as wide as its text (the stepper may scroll).
      const names = page.locator('[data-testid^="stage-status-"] .name');
      await expect(names).toHaveCount(7);
      for (const clipped of await names.evaluateAll((els) => els.map((el) => el.scrollWidth > el.clientWidth + 1))) expect(clipped).toBe(false);
    });
  });
}

test.describe('the new-project dialog', () => {
  test.use({ locale: 'zh-CN', viewport: { width: 1440, height: 900 } });

  test('shows no error before anything was typed, and says when a pasted name was cut', async ({ page, context, studio }) => {
    await signIn(context, studio);
    await page.goto('/projects');
    await page.getByTestId('new-project').click();
    const dialog = page.getByTestId('project-dialog');
    await expect(dialog).toBeVisible();
    // Moving from field to field is not a mistake yet.
    await page.getByTestId('project-topic-input').click();
    await page.getByTestId('project-name-input').click();
    await dialog.locator('.el-dialog__title').click();
    await expect(dialog.locator('.el-form-item__error')).toHaveCount(0);

    const input = page.getByTestId('project-name-input');
    await input.fill('鲸'.repeat(250));
    await expect(input).toHaveValue('鲸'.repeat(200));
    await expect(page.getByTestId('project-name-cut')).toBeVisible();
    await expect(page.getByTestId('project-name-cut')).toContainText('200');
    // Submitting with nothing in a required field still says so.
    await input.fill('');
    await page.getByTestId('project-dialog-submit').click();
    await expect(dialog.locator('.el-form-item__error').first()).toBeVisible();
  });
});

test.describe('a first run in Chinese', () => {
  test.use({ locale: 'zh-CN', viewport: { width: 1440, height: 900 } });

  test('speaks Chinese only, shows its notes, and remembers the model chosen', async ({ page, context, studio }) => {
    await signIn(context, studio);
    const id = await createProject(page, studio, '灯塔与鲸鱼');
    await page.goto(`/projects/${id}/rewrite`);
    // The offline demo model, chosen by hand: remembered after a reload.
    await page.getByTestId('rewrite-provider').click();
    const option = page.locator('.el-select-dropdown__item:visible').filter({ hasText: 'ai-story-demo' }).first();
    const label = (await option.innerText()).trim();
    await option.click();
    await page.reload();
    await expect(page.getByTestId('rewrite-provider')).toContainText(label.split('\n')[0]);

    await page.getByTestId('rewrite-generate').click();
    await expect(page.getByTestId('rewrite-phase')).toHaveAttribute('data-phase', 'completed', { timeout: 90_000 });
    // The demo tells the topic's own story.
    await expect(page.getByTestId('rewrite-editor')).toHaveValue(/鲸鱼/);
    // The run's notes (which model) are shown, in Chinese.
    await expect(page.getByTestId('rewrite-info')).toContainText('使用');

    // No English words on the page the run touched, besides names (product, models, providers).
    const words = await page.evaluate(() => {
      const clone = document.body.cloneNode(true) as HTMLElement;
      // What the model wrote and what the user typed are content, not the studio's words.
      for (const el of clone.querySelectorAll('[data-testid="rewrite-stream-text"], textarea, input, .mono, [data-testid="run-history"], [data-testid="project-title"], [data-testid="user-menu"]')) el.remove();
      document.body.append(clone);
      clone.style.position = 'absolute';
      const text = clone.innerText;
      clone.remove();
      return text.match(/[A-Za-z]{3,}/g) ?? [];
    });
    const NAMES = new Set(['AI', 'Story', 'ai', 'story', 'demo', 'OpenAI']); // the product and the demo model's id (ai-story-demo)
    expect(words.filter((w) => !NAMES.has(w))).toEqual([]);
  });
});
