#!/usr/bin/env node
// Builds the server into apps/server/dist: what `npm start`, `npm run worker`, the Docker image and
// the end-to-end specs run.
//
//   npm run build -w @ai-story/server
//
// One ES module per entry — the studio, the scale-out worker and the three worker threads' modules —
// with our code and the workspace packages (TypeScript) bundled in and npm packages left to
// node_modules. Running from the source instead (tsx) keeps a module loader thread and every
// transpiled module in memory for the process's life: about 40 MB more resident memory at 1,000 live
// streams (bench/relay.bench.ts), and a slower start. Source maps keep stack traces pointing at the
// TypeScript (run with --enable-source-maps).
//
// A build whose inputs are unchanged is kept: callers (npm start, the benches, the e2e setup) run this
// every time, and rewriting dist would swap files under a studio already running from them.
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const server = import.meta.dirname;
const src = path.join(server, 'src');
const dist = path.join(server, 'dist');
const migrations = path.join(src, 'db/migrations');
/** What the last build read (esbuild's own list of inputs), written last: no list, no finished build. */
const INPUTS = path.join(dist, 'inputs.json');

/** Everything imported by a bare name stays an import, but our own workspace packages (TypeScript source). */
const npmPackagesStayExternal = {
  name: 'npm-packages-stay-external',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith('@ai-story/') ? undefined : { path: args.path, external: true }));
  },
};

/** True when dist holds a finished build newer than every file it was made from. */
function upToDate() {
  if (!existsSync(INPUTS)) return false;
  const builtAt = statSync(INPUTS).mtimeMs;
  const inputs = JSON.parse(readFileSync(INPUTS, 'utf8')).map((p) => path.resolve(server, p));
  const copied = readdirSync(migrations, { recursive: true }).map((f) => path.join(migrations, String(f)));
  return [import.meta.filename, ...inputs, ...copied].every((f) => existsSync(f) && statSync(f).mtimeMs <= builtAt);
}

if (upToDate()) {
  console.log('[build] server up to date');
} else {
  // The build is dated from its start: a file saved while esbuild runs is newer, so the next call rebuilds.
  const startedAt = new Date();
  rmSync(dist, { recursive: true, force: true });
  const { metafile } = await build({
    absWorkingDir: server,
    // Flat: every bundle sits in dist/, so a module finds its workers (worker-module.ts) and the
    // migrations (db/client.ts) beside it.
    entryPoints: {
      main: path.join(src, 'main.ts'),
      worker: path.join(src, 'worker.ts'),
      'pglite-worker': path.join(src, 'db/pglite-worker.ts'),
      'llm-stream-worker': path.join(src, 'providers/llm-stream-worker.ts'),
      'render-worker': path.join(src, 'prompts/render-worker.ts'),
    },
    outdir: dist,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: true,
    metafile: true,
    plugins: [npmPackagesStayExternal],
    logLevel: 'warning',
  });
  cpSync(migrations, path.join(dist, 'migrations'), { recursive: true });
  writeFileSync(INPUTS, JSON.stringify(Object.keys(metafile.inputs)));
  utimesSync(INPUTS, startedAt, startedAt);
  console.log(`[build] server → ${path.relative(process.cwd(), dist) || '.'}`);
}
