#!/usr/bin/env node
// `npm start`: works on a fresh clone by itself. Installs dependencies and builds the web app and the
// server only when they are missing or out of date, so a second start is fast; then runs the studio in
// the foreground and hands it SIGTERM/SIGINT for a clean shutdown. `npm run worker` (this with
// `worker`) runs a scale-out run worker the same way.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
/** `npm run worker`: a run worker, which serves no web app. */
const worker = process.argv[2] === 'worker';
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);
const newest = (dir) => {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return latest;
};

if (mtime(path.join(root, 'package-lock.json')) > mtime(path.join(root, 'node_modules/.package-lock.json'))) {
  console.log('[start] installing dependencies (npm ci)…');
  run('npm', ['ci', '--no-audit', '--no-fund']);
}

const web = path.join(root, 'apps/web');
const builtAt = mtime(path.join(web, 'dist/index.html'));
const sourcesAt = Math.max(newest(path.join(web, 'src')), newest(path.join(root, 'packages/contracts/src')), mtime(path.join(web, 'index.html')));
if (!worker && builtAt < sourcesAt) {
  console.log('[start] building the web app…');
  run('npm', ['run', 'build', '-w', '@ai-story/web']);
}

// The server runs built; the build keeps itself when none of the files it was made from changed.
run(process.execPath, ['apps/server/build.mjs']);

// The media stages need Debian's ffmpeg and espeak-ng (DESIGN §9). Installed when this is root with
// apt; otherwise the one command is printed and the studio starts anyway (the LLM stages work, and the
// media tabs say what is missing).
const hasCommand = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const missingMedia = [
  ...(!hasCommand('ffmpeg') || !hasCommand('ffprobe') ? ['ffmpeg'] : []),
  ...(!hasCommand('espeak-ng') ? ['espeak-ng'] : []),
];
if (missingMedia.length) {
  const canApt = process.getuid?.() === 0 && hasCommand('apt-get');
  if (canApt) {
    console.log(`[start] installing ${missingMedia.join(' ')} for the media stages (apt-get)…`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const update = spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
    const install = update.status === 0 && spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...missingMedia], { stdio: 'inherit', env });
    if (!install || install.status !== 0) console.warn(`[start] could not install ${missingMedia.join(' ')}; the media stages will say what is missing`);
  } else {
    console.warn(`[start] the media stages need: sudo apt-get install -y --no-install-recommends ${missingMedia.join(' ')}`);
  }
}

// A heap limit below V8's default (a quarter of the machine's memory, up to 4 GB) also makes V8 let the
// heap grow less past what is live before it collects (its growth factor scales with the limit): at
// 1,000 live streams 1,536 MB took the studio's resident memory from ~520 to ~430 MB, and 1,024 MB a
// further 15-88 MB lower on PostgreSQL and 42-48 MB on PGlite (bench/relay.bench.ts). CPU per token was
// the same within the rounds' spread, but on PGlite at 1,000 streams ~8 % higher (more major collections).
// What a studio keeps live there is ~90 MB: the limit leaves ten times that. The Dockerfile sets the same.
// Source maps: stack traces in the log name the TypeScript source.
// glibc's malloc keeps an arena per thread that allocates (the studio's LLM reader, the embedded
// database's thread, Node's and V8's helpers), each holding freed memory: two arenas held ~25 MB
// (PostgreSQL) to ~35 MB (PGlite) less at 1,000 live streams, for the same CPU. The Dockerfile sets the same.
const entry = worker ? 'apps/server/dist/worker.js' : 'apps/server/dist/main.js';
const env = { MALLOC_ARENA_MAX: '2', ...process.env };
const server = spawn(process.execPath, ['--max-old-space-size=1024', '--enable-source-maps', entry], { cwd: root, stdio: 'inherit', env });
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.kill(signal));
server.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
