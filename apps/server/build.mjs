#!/usr/bin/env node
// Builds the server into apps/server/dist: what `npm start` and the Docker image run.
//
//   npm run build -w @ai-story/server
//
// One ES module per entry — the studio, the scale-out worker and the two worker threads' modules —
// with our code and the workspace packages (TypeScript) bundled in and npm packages left to
// node_modules. Running from the source instead (tsx) keeps a module loader thread and every
// transpiled module in memory for the process's life: about 40 MB more resident memory at 1,000 live
// streams (bench/relay.bench.ts), and a slower start. Source maps keep stack traces pointing at the
// TypeScript (run with --enable-source-maps).
import { cpSync, rmSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const server = import.meta.dirname;
const src = path.join(server, 'src');
const dist = path.join(server, 'dist');

/** Everything imported by a bare name stays an import, but our own workspace packages (TypeScript source). */
const npmPackagesStayExternal = {
  name: 'npm-packages-stay-external',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith('@ai-story/') ? undefined : { path: args.path, external: true }));
  },
};

rmSync(dist, { recursive: true, force: true });
await build({
  // Flat: every bundle sits in dist/, so a module finds its workers (worker-module.ts) and the
  // migrations (db/client.ts) beside it.
  entryPoints: {
    main: path.join(src, 'main.ts'),
    worker: path.join(src, 'worker.ts'),
    'pglite-worker': path.join(src, 'db/pglite-worker.ts'),
    'render-worker': path.join(src, 'prompts/render-worker.ts'),
  },
  outdir: dist,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  plugins: [npmPackagesStayExternal],
  logLevel: 'warning',
});
cpSync(path.join(src, 'db/migrations'), path.join(dist, 'migrations'), { recursive: true });
console.log(`[build] server → ${path.relative(process.cwd(), dist) || '.'}`);
