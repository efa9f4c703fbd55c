#!/usr/bin/env node
// `npm test`: every test of the project, from a fresh clone, in one command.
//
//   1. install      npm ci, when node_modules is missing or older than package-lock.json
//   2. system       scripts/ensure-system.mjs: Chromium, CJK fonts, a PostgreSQL server
//   3. typecheck    server (tsc), web (vue-tsc), e2e specs and the test configs (tsc)
//   4. vitest       unit + integration tests on PGlite, then the integration tests on PostgreSQL
//   5. build        the web app (the studio serves apps/web/dist) and the server (what npm start runs)
//   6. e2e          Playwright in Chromium against real studios (e2e/fixtures.ts)
//
// Output streams live; the first failing step stops the run with its name and a non-zero exit.
// The last line counts the tests of every run: `N passed, N failed, N skipped`.
//
// Options (for local work; CI runs it bare):
//   --only=id,id   run just these steps (ids: install system typecheck-server typecheck-web
//                  typecheck-e2e vitest-pglite vitest-postgres build e2e)
//   --skip=id,id   leave these out (reported as skipped on request)
// Env: TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), E2E_WORKERS.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const TMP = path.join(ROOT, '.tmp');
const BIN = path.join(ROOT, 'node_modules/.bin');
const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const MIN = 60_000;

const args = process.argv.slice(2);
const listArg = (name) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1].split(',').filter(Boolean);
const only = listArg('only');
const skip = listArg('skip') ?? [];

const isTTY = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code) => (s) => (isTTY ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = paint('1');
const red = paint('31');
const green = paint('32');
const yellow = paint('33');

// ------------------------------------------------------------------ what to run

const vitestJson = (name) => path.join(TMP, `vitest-${name}.json`);
const playwrightJson = path.join(TMP, 'playwright.json');

function lockfileNewerThanInstall() {
  const installed = path.join(ROOT, 'node_modules/.package-lock.json');
  if (!existsSync(path.join(ROOT, 'node_modules')) || !existsSync(installed)) return 'node_modules is missing';
  if (statSync(path.join(ROOT, 'package-lock.json')).mtimeMs > statSync(installed).mtimeMs) {
    return 'package-lock.json is newer than node_modules';
  }
  return null;
}

const hasFiles = (dir, pattern) => {
  const abs = path.join(ROOT, dir);
  return existsSync(abs) && readdirSync(abs, { recursive: true }).some((f) => pattern.test(String(f)) && !String(f).includes('node_modules'));
};

/** @typedef {{ passed: number, failed: number, skipped: number }} Counts */
/**
 * @type {Array<{ id: string, title: string, cmd: string, args: string[], env?: object, timeoutMs: number,
 *   when?: () => string | null, counts?: () => Counts | null }>}
 * `when` returns a reason to skip, or null to run.
 */
const steps = [
  {
    id: 'install',
    title: 'install dependencies (npm ci)',
    cmd: 'npm',
    args: ['ci', '--no-audit', '--no-fund'],
    timeoutMs: 20 * MIN,
    when: () => (lockfileNewerThanInstall() ? null : 'node_modules is up to date'),
  },
  {
    id: 'system',
    title: 'system requirements (Chromium, CJK fonts, PostgreSQL, Redis)',
    cmd: process.execPath,
    args: [path.join(ROOT, 'scripts/ensure-system.mjs')],
    timeoutMs: 20 * MIN,
  },
  {
    id: 'typecheck-server',
    title: 'typecheck: server, contracts, fake upstreams, benches (tsc)',
    cmd: path.join(BIN, 'tsc'),
    args: ['-p', 'apps/server'],
    timeoutMs: 10 * MIN,
  },
  {
    id: 'typecheck-web',
    title: 'typecheck: web app (vue-tsc)',
    cmd: 'npm',
    args: ['run', 'typecheck', '-w', '@ai-story/web'],
    timeoutMs: 10 * MIN,
  },
  {
    // The specs and the test configs belong to no workspace tsconfig; check them with the base options.
    id: 'typecheck-e2e',
    title: 'typecheck: e2e specs and test configs (tsc)',
    cmd: path.join(BIN, 'tsc'),
    args: [
      // Bundler resolution, as Playwright's loader resolves specs: `from './fixtures'` without extension.
      '--noEmit', '--strict', '--skipLibCheck', '--target', 'ES2023', '--module', 'preserve',
      '--moduleResolution', 'bundler', '--allowImportingTsExtensions', '--types', 'node',
      'playwright.config.ts', 'vitest.config.ts',
      ...(existsSync(path.join(ROOT, 'e2e'))
        ? readdirSync(path.join(ROOT, 'e2e')).filter((f) => f.endsWith('.ts')).map((f) => path.join('e2e', f))
        : []),
    ],
    timeoutMs: 10 * MIN,
  },
  {
    id: 'vitest-pglite',
    title: 'vitest: unit + integration on PGlite',
    cmd: path.join(BIN, 'vitest'),
    args: ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${vitestJson('pglite')}`],
    env: { TEST_DB: 'pglite' },
    timeoutMs: 30 * MIN,
    counts: () => vitestCounts(vitestJson('pglite')),
  },
  {
    id: 'vitest-postgres',
    title: 'vitest: integration on PostgreSQL',
    cmd: path.join(BIN, 'vitest'),
    args: ['run', '--project', 'integration', '--reporter=default', '--reporter=json', `--outputFile.json=${vitestJson('postgres')}`],
    env: { TEST_DB: 'postgres', TEST_DATABASE_URL: process.env.TEST_DATABASE_URL || DEFAULT_DATABASE_URL },
    timeoutMs: 30 * MIN,
    when: () => (hasFiles('apps/server/test', /\.test\.ts$/) ? null : 'NO INTEGRATION TESTS in apps/server/test yet'),
    counts: () => vitestCounts(vitestJson('postgres')),
  },
  {
    id: 'build',
    title: 'build: web app (vite) and server (esbuild)',
    cmd: 'npm',
    args: ['run', 'build'],
    timeoutMs: 15 * MIN,
  },
  {
    id: 'e2e',
    title: 'e2e: Playwright in Chromium',
    cmd: path.join(BIN, 'playwright'),
    args: ['test', '--reporter=list,json'],
    env: { PLAYWRIGHT_JSON_OUTPUT_FILE: playwrightJson },
    timeoutMs: 40 * MIN,
    when: () => (hasFiles('e2e', /\.(spec|test)\.ts$/) ? null : 'NO E2E SPECS in e2e/ yet'),
    counts: () => playwrightCounts(playwrightJson),
  },
];

// ------------------------------------------------------------------ counting tests

function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

/** Vitest's JSON reporter (Jest-compatible totals). */
function vitestCounts(file) {
  const r = readJson(file);
  if (!r) return null;
  // A file that fails to load (import error, failing beforeAll) has no failed test of its own:
  // count it as one failure, or a broken suite could read "0 failed".
  const brokenFiles = (r.testResults ?? []).filter(
    (f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed'),
  ).length;
  return {
    passed: r.numPassedTests ?? 0,
    failed: (r.numFailedTests ?? 0) + brokenFiles,
    skipped: (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0),
  };
}

/** Playwright's JSON reporter: expected = passed, unexpected = failed, flaky passed on a retry. */
function playwrightCounts(file) {
  const s = readJson(file)?.stats;
  if (!s) return null;
  return { passed: (s.expected ?? 0) + (s.flaky ?? 0), failed: s.unexpected ?? 0, skipped: s.skipped ?? 0 };
}

// ------------------------------------------------------------------ running

let current = null; // the running child, to pass signals on

function run(step) {
  return new Promise((resolve) => {
    const child = spawn(step.cmd, step.args, {
      cwd: ROOT,
      env: { ...process.env, ...step.env },
      stdio: ['ignore', 'inherit', 'inherit'],
      detached: true, // its own process group: a timeout or Ctrl-C stops the whole tree
    });
    current = child;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      console.error(red(`\n${step.title}: no result after ${step.timeoutMs / MIN} min; stopping it.`));
      killTree(child, 'SIGTERM');
      setTimeout(() => killTree(child, 'SIGKILL'), 10_000).unref();
    }, step.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      current = null;
      console.error(red(`cannot start ${step.cmd}: ${err.message}`));
      resolve({ code: 127, timedOut });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      current = null;
      resolve({ code: code ?? (signal ? 128 : 1), signal, timedOut });
    });
  });
}

function killTree(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (current) killTree(current, signal);
    console.error(red(`\nnpm test interrupted (${signal}).`));
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}

const fmt = (ms) => (ms < MIN ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / MIN)} min ${Math.round((ms % MIN) / 1000)} s`);

// ------------------------------------------------------------------ main

mkdirSync(TMP, { recursive: true });
for (const f of [vitestJson('pglite'), vitestJson('postgres'), playwrightJson]) rmSync(f, { force: true });

const started = Date.now();
const results = [];
const totals = { passed: 0, failed: 0, skipped: 0 };
let failure = null;
const selected = steps.filter((s) => (!only || only.includes(s.id)));
const unknown = [...(only ?? []), ...skip].filter((id) => !steps.some((s) => s.id === id));
if (unknown.length) {
  console.error(red(`unknown step id(s): ${unknown.join(', ')}; known: ${steps.map((s) => s.id).join(' ')}`));
  process.exit(2);
}

for (const [i, step] of selected.entries()) {
  const label = `[${i + 1}/${selected.length}] ${step.title}`;
  const reason = skip.includes(step.id) ? 'skipped on request (--skip)' : step.when?.();
  if (reason) {
    const loud = /^NO /.test(reason);
    console.log(`\n${bold('━━ ' + label)}\n${(loud ? yellow : (s) => s)(`   skipped: ${reason}`)}`);
    results.push({ step, status: 'skipped', note: reason, ms: 0 });
    continue;
  }
  console.log(`\n${bold('━━ ' + label)}\n   $ ${[step.cmd === process.execPath ? 'node' : path.relative(ROOT, step.cmd), ...step.args.map((a) => path.relative(ROOT, a).startsWith('..') ? a : a.replace(ROOT + path.sep, ''))].join(' ')}`);
  const t0 = Date.now();
  const { code, timedOut } = await run(step);
  const ms = Date.now() - t0;

  let counts = step.counts?.() ?? null;
  if (step.counts && !counts && code !== 0) counts = { passed: 0, failed: 1, skipped: 0 }; // crashed before reporting
  if (counts) for (const k of Object.keys(totals)) totals[k] += counts[k];
  const countNote = counts ? `${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped` : '';

  if (code === 0) {
    results.push({ step, status: 'passed', note: countNote, ms });
    console.log(green(`── ${step.title}: passed in ${fmt(ms)}${countNote && ` (${countNote})`}`));
  } else {
    results.push({ step, status: 'FAILED', note: timedOut ? 'timed out' : `exit ${code}${countNote && `; ${countNote}`}`, ms });
    // A failed step that runs no tests (typecheck, build…) still counts as one failure below.
    if (!counts || counts.failed === 0) totals.failed += 1;
    failure = step;
    console.error(red(bold(`\n✗ ${step.title} FAILED (${timedOut ? 'timed out' : `exit code ${code}`}) — see its output above.`)));
    break;
  }
}

for (const step of selected.slice(results.length)) results.push({ step, status: 'not run', note: 'an earlier step failed', ms: 0 });

console.log(`\n${bold('Summary')}`);
const width = Math.max(...results.map((r) => r.step.title.length));
for (const r of results) {
  const status = r.status === 'passed' ? green(r.status.padEnd(8)) : r.status === 'FAILED' ? red(r.status.padEnd(8)) : yellow(r.status.padEnd(8));
  console.log(`  ${r.step.title.padEnd(width)}  ${status}  ${fmt(r.ms).padStart(12)}  ${r.note}`);
}
console.log(`  total time ${fmt(Date.now() - started)}`);
if (failure) console.log(red(bold(`npm test failed at: ${failure.title}`)));
else console.log(green(bold('npm test passed')));
console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(failure ? 1 : 0);
