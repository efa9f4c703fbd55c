#!/usr/bin/env node
// `npm run dev`: the API (restarts when its sources change) and the Vite dev server (hot reload,
// proxies /api to the API) side by side, their output prefixed [api] / [web].
// Ctrl-C (or SIGTERM) stops both; if either one exits, the other is stopped too.
// The API reads the usual environment (PORT, DATA_DIR, DATABASE_URL, ADMIN_*, OPENAI_* …).

import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';

const ROOT = path.resolve(import.meta.dirname, '..');
const color = process.stdout.isTTY && !process.env.NO_COLOR;
const tag = (name, code) => (color ? `\x1b[${code}m[${name}]\x1b[0m` : `[${name}]`);

const services = [
  { name: 'api', tag: tag('api', 36), cmd: process.execPath, args: ['--watch', '--import', 'tsx', 'apps/server/src/main.ts'] },
  { name: 'web', tag: tag('web', 35), cmd: 'npm', args: ['run', 'dev', '-w', '@ai-story/web'] },
];

// Point the Vite proxy at the API wherever PORT / HOST put it (the web config defaults to :3000).
const apiHost = process.env.HOST && !['0.0.0.0', '::'].includes(process.env.HOST) ? process.env.HOST : '127.0.0.1';
const env = {
  ...process.env,
  AI_STORY_API: process.env.AI_STORY_API ?? `http://${apiHost.includes(':') ? `[${apiHost}]` : apiHost}:${process.env.PORT || 3000}`,
  ...(color && { FORCE_COLOR: '1' }),
};

let stopping = false;
let exitCode = 0;

for (const s of services) {
  // Own process group each, so a stop reaches npm's children (vite) too.
  s.child = spawn(s.cmd, s.args, {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  for (const stream of [s.child.stdout, s.child.stderr]) {
    readline.createInterface({ input: stream }).on('line', (line) => console.log(`${s.tag} ${line}`));
  }
  s.exited = new Promise((resolve) => s.child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
  s.exited.then((code) => {
    console.log(stopping ? `${s.tag} stopped` : `${s.tag} exited${code ? ` with code ${code}` : ''}`);
    if (!stopping) {
      exitCode = code || 1; // one half of the studio alone is of no use: stop the other half
      stopAll('SIGTERM');
    }
  });
  s.child.once('error', (err) => console.error(`${s.tag} could not start: ${err.message}`));
}

function signalGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

async function stopAll(signal) {
  if (stopping) {
    // A second Ctrl-C: no more waiting.
    for (const s of services) signalGroup(s.child, 'SIGKILL');
    process.exit(exitCode || 130);
  }
  stopping = true;
  for (const s of services) signalGroup(s.child, signal);
  const force = setTimeout(() => services.forEach((s) => signalGroup(s.child, 'SIGKILL')), 10_000);
  await Promise.all(services.map((s) => s.exited));
  clearTimeout(force);
  process.exit(exitCode);
}

process.on('SIGINT', () => void stopAll('SIGINT'));
process.on('SIGTERM', () => void stopAll('SIGTERM'));
