import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from '@playwright/test';
import { expect, signIn, test } from './fixtures';

test.use({ locale: 'zh-CN' });
test.describe.configure({ timeout: 300_000 });

const SHOTS = path.join(import.meta.dirname, 'screenshots');
mkdirSync(SHOTS, { recursive: true });
const TOPIC = '雨夜，一只橘猫在街角发抖。小女孩撑伞走来，把它抱回了家。第二天清晨，阳光照进窗台，猫咪伸了个懒腰。';

const clockOf = async (page: Page) => Number(await page.getByTestId('export-preview-clock').getAttribute('data-seconds'));

async function newProject(page: Page, baseURL: string, name: string): Promise<string> {
  const res = await page.request.post('/api/v1/projects/', { data: { name, original_topic: TOPIC }, headers: { origin: baseURL } });
  expect(res.status()).toBe(201);
  return (await res.json()).id;
}

/**
 * The preview player alone, before any export: its timeline is the server's (…/export/preview/, covered
 * by the integration tests) answered here from real small clips and espeak speech made for the test,
 * so the player is tested whether or not the picture stages exist in this build.
 */
test('the preview plays the whole video before any export: the clock advances, subtitles follow it, a line seeks and its edit shows', async ({ page, context, studio }) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'e2e-export-'));
  try {
    const clips = ['0xc0504d', '0x4f81bd'].map((colour, i) => {
      const file = path.join(dir, `clip${i}.mp4`);
      const r = spawnSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', `color=c=${colour}:s=360x640:r=25:d=2`, '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-movflags', '+faststart', file]);
      expect(r.status).toBe(0);
      return file;
    });
    const voices = ['雨夜的街角', '小女孩撑伞走来'].map((text, i) => {
      const file = path.join(dir, `voice${i}.wav`);
      expect(spawnSync('espeak-ng', ['-v', 'cmn', '-s', '300', '-w', file, text]).status).toBe(0);
      return file;
    });
    await signIn(context, studio);
    const id = await newProject(page, studio.baseURL, '预览：雨夜的猫');
    let edits: Record<string, string> = {};
    await page.route('**/e2e-media/**', (route) => {
      const name = new URL(route.request().url()).pathname.split('/').pop()!;
      const file = [...clips, ...voices].find((f) => path.basename(f) === name)!;
      return route.fulfill({ path: file, contentType: name.endsWith('.mp4') ? 'video/mp4' : 'audio/wav' });
    });
    // Edits go to the real server; the preview answered here applies what it saved.
    await page.route('**/stages/export/settings/', async (route) => {
      const res = await route.fetch();
      if (route.request().method() === 'PATCH' && res.ok()) edits = (await res.json()).subtitle_edits ?? {};
      return route.fulfill({ response: res });
    });
    await page.route(`**/api/v1/projects/${id}/export/preview/`, (route) => {
      const lines = [
        { key: 's1:0', shot_id: 's1', text: '雨夜的街角', start_s: 0.2, end_s: 1.5 },
        { key: 's2:0', shot_id: 's2', text: '小女孩撑伞走来', start_s: 1.8, end_s: 3.4 },
      ].map((l) => ({ ...l, text: edits[l.key] ?? l.text, edited: l.key in edits }));
      return route.fulfill({
        json: {
          width: 720, height: 1280, fps: 25, total_s: 3.6,
          transition: { kind: 'fade', duration_s: 0.4 },
          shots: [0, 1].map((i) => ({
            shot_id: `s${i + 1}`, sequence_number: i + 1, start_s: i * 1.6, duration_s: 2,
            clip_url: `/e2e-media/clip${i}.mp4`, image_url: null, movement: 'zoom_in', narration_url: `/e2e-media/voice${i}.wav`,
          })),
          lines, music_url: null, label: 'AI 生成',
        },
      });
    });

    await page.goto(`/projects/${id}/export`);
    await expect(page.getByTestId('export-preview')).toBeVisible();
    await expect(page.getByTestId('export-lines').locator('li')).toHaveCount(2);
    expect(await clockOf(page)).toBe(0);
    await page.getByTestId('export-preview-play').click();
    await expect(page.getByTestId('export-preview-subtitle')).toHaveText('雨夜的街角', { timeout: 5_000 });
    await expect.poll(() => clockOf(page), { timeout: 10_000 }).toBeGreaterThan(0.5);
    await expect(page.getByTestId('export-preview-subtitle')).toHaveText('小女孩撑伞走来', { timeout: 10_000 });
    await page.screenshot({ path: path.join(SHOTS, 'export-01-preview.png') });
    await expect.poll(() => clockOf(page), { timeout: 10_000 }).toBeGreaterThanOrEqual(3.6);

    // Clicking a line seeks there; editing it changes what the preview shows.
    await page.getByTestId('export-line-1').locator('button').click();
    expect(await clockOf(page)).toBeCloseTo(1.8, 1);
    await expect(page.getByTestId('export-preview-subtitle')).toHaveText('小女孩撑伞走来');
    const saved = page.waitForResponse((r) => r.url().includes('/stages/export/settings/') && r.request().method() === 'PATCH');
    await page.getByTestId('export-line-1').locator('input').fill('小女孩撑着红伞走来');
    await expect(page.getByTestId('export-preview-subtitle')).toHaveText('小女孩撑着红伞走来');
    expect((await saved).status()).toBe(200);
    await expect.poll(() => edits['s2:0']).toBe('小女孩撑着红伞走来');
    // Read again after the save, the preview keeps the edit.
    await expect(page.getByTestId('export-line-1').locator('input')).toHaveValue('小女孩撑着红伞走来');
    await page.getByTestId('export-line-1').locator('button').click();
    await expect(page.getByTestId('export-preview-subtitle')).toHaveText('小女孩撑着红伞走来');
    await page.screenshot({ path: path.join(SHOTS, 'export-02-edited.png'), fullPage: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** From a topic to a playable MP4 offline, with one click (Run all): every stage runs for real. */
test('one click turns a topic into an MP4 that plays in the page, with its downloads', async ({ page, context, studio }) => {
  // Every stage for real at 720p on a shared 2-core machine: minutes, not seconds.
  test.setTimeout(900_000);
  await signIn(context, studio);
  const id = await newProject(page, studio.baseURL, '一键成片：雨夜的猫');
  await page.goto(`/projects/${id}/export`);
  await page.getByTestId('pipeline-execute').click();
  const exportStatus = page.getByTestId('stage-status-export');
  await expect(exportStatus).toHaveAttribute('data-status', /^(completed|skipped|failed)$/, { timeout: 840_000 });
  await expect(exportStatus).toHaveAttribute('data-status', 'completed');
  await expect(page.getByTestId('export-result')).toBeVisible();
  const video = page.getByTestId('export-video');
  // The cover stands in the player until the video's first frame has loaded.
  const poster = await page.request.get((await video.getAttribute('poster'))!);
  expect(poster.headers()['content-type']).toMatch(/^image\/jpeg/);
  await video.evaluate((v: HTMLVideoElement) => {
    v.muted = true;
    return v.play();
  });
  await expect.poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime), { timeout: 10_000 }).toBeGreaterThan(0.3);
  await page.screenshot({ path: path.join(SHOTS, 'export-03-finished.png'), fullPage: true });
  const types: Record<string, RegExp> = { mp4: /^video\/mp4/, srt: /subrip/, ass: /ssa/, cover: /^image\/jpeg/, narration: /^(audio|video)\/mp4/, draft: /^application\/zip/ };
  // The narration stage ran, so subtitles and the narration track are among the downloads.
  await expect(page.getByTestId('stage-status-narration')).toHaveAttribute('data-status', 'completed');
  for (const [key, type] of Object.entries(types)) {
    const href = await page.getByTestId(`export-download-${key}`).getAttribute('href');
    const res = await page.request.get(href!);
    expect(res.status(), key).toBe(200);
    expect(res.headers()['content-type'], key).toMatch(type);
    expect(res.headers()['content-disposition'], key).toContain('attachment');
  }
});
