import { defineConfig, devices } from '@playwright/test';

// End-to-end tests: Playwright drives Debian's Chromium (/usr/bin/chromium; `npm test` makes sure it
// is installed — we never download a browser build) against a real studio that e2e/fixtures.ts
// starts per worker from the built web app. Specs import { test, expect } from './fixtures'.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export default defineConfig({
  testDir: 'e2e',
  globalSetup: './e2e/build-server.ts',
  outputDir: 'test-results',
  // Each worker runs its own studio (server + in-process database) next to a browser. On the 2-core
  // CI machine one worker keeps the streaming and drag-and-drop specs clear of CPU contention (a run
  // with two once lost a reorder to a poll timeout); locally two are faster.
  workers: Number(process.env.E2E_WORKERS ?? (process.env.CI ? 1 : 2)),
  fullyParallel: false,
  retries: 0,
  forbidOnly: !!process.env.CI,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  reporter: 'list',
  use: {
    headless: true,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    actionTimeout: 15_000,
    navigationTimeout: 30_000,
  },
  projects: [
    {
      name: 'chromium',
      use: {
        ...devices['Desktop Chrome'],
        channel: undefined,
        launchOptions: {
          executablePath: CHROMIUM,
          // Running as root needs --no-sandbox; the network flags stop Chromium's own background
          // calls, which a closed network refuses noisily (and which tests never want anyway).
          args: [
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
          ],
        },
      },
    },
  ],
});
