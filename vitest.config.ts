import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Two projects so the suite can run twice without repeating pure logic:
//   unit         x.test.ts beside x.ts — database-agnostic, run once;
//   integration  apps/server/test — real HTTP against buildApp and a real database, run once per
//                engine: `TEST_DB=pglite vitest run` (everything), then
//                `TEST_DB=postgres TEST_DATABASE_URL=postgres://… vitest run --project integration`.
// scripts/test.mjs does exactly that; `npx vitest` alone runs everything on PGlite.

const root = import.meta.dirname;

// The server's integration tests may prepare shared state once per run (e.g. one initialised PGlite
// folder that every test file copies, DESIGN §2). Picked up when that file exists, so nothing here
// has to change the day it is added.
const integrationSetup = path.join(root, 'apps/server/test/global-setup.ts');

export default defineConfig({
  // The web app's own import alias (apps/web/vite.config.ts), for its unit tests.
  resolve: { alias: [{ find: '@', replacement: fileURLToPath(new URL('./apps/web/src', import.meta.url)) }] },
  test: {
    root,
    // Forks, not threads: PGlite (WASM) and native addons behave best in their own process.
    pool: 'forks',
    // The machines have 2 cores; each integration file may hold an in-process Postgres (~300 MiB+).
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    exclude: ['**/node_modules/**', '**/dist/**', 'e2e/**'],
    env: { TEST_DB: process.env.TEST_DB ?? 'pglite' },
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['apps/server/src/**/*.test.ts', 'apps/web/src/**/*.test.ts', 'tools/**/src/**/*.test.ts', 'packages/**/src/**/*.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['apps/server/test/**/*.test.ts'],
          globalSetup: existsSync(integrationSetup) ? [integrationSetup] : [],
        },
      },
    ],
  },
});
