// deploy/nginx.conf run locally with Debian's nginx, in front of two studio processes: used by the
// deploy test and by the followers benchmark, so both exercise the shipped config itself.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';

const NGINX_CONF = path.resolve(import.meta.dirname, '../../../deploy/nginx.conf');

/** Debian's nginx (scripts/ensure-system.mjs installs it); null when this machine has none. */
export function findNginx(): string | null {
  const found = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).stdout.trim();
  if (found) return found;
  return existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : null;
}

/** Replaces exactly one occurrence: a deploy/nginx.conf that no longer has the line must fail here, not drift. */
function replaceOnce(text: string, from: string | RegExp, to: string): string {
  const count = typeof from === 'string' ? text.split(from).length - 1 : (text.match(new RegExp(from.source, from.flags.includes('g') ? from.flags : from.flags + 'g')) ?? []).length;
  if (count !== 1) throw new Error(`deploy/nginx.conf: expected one ${String(from)}, found ${count}`);
  return text.replace(from, to);
}

/**
 * deploy/nginx.conf made runnable here: the two upstream servers and the listen address become local
 * ports; pid, logs and temp folders go to `dir` (the package's own folders belong to its user); and
 * the workers run as the current user.
 */
export function runnableNginxConf(source: string, opts: { port: number; upstreams: [number, number]; dir: string }): string {
  const { port, upstreams, dir } = opts;
  const isRoot = process.getuid?.() === 0;
  let conf = source;
  conf = replaceOnce(conf, /^user www-data;$/m, isRoot ? 'user root;' : '# user: the current one');
  conf = replaceOnce(conf, 'pid /run/nginx.pid;', `pid ${dir}/nginx.pid;`);
  conf = replaceOnce(conf, 'error_log /var/log/nginx/error.log', `error_log ${dir}/error.log`);
  conf = replaceOnce(conf, 'access_log /var/log/nginx/access.log', `access_log ${dir}/access.log`);
  conf = replaceOnce(conf, 'server api-1:3000', `server 127.0.0.1:${upstreams[0]}`);
  conf = replaceOnce(conf, 'server api-2:3000', `server 127.0.0.1:${upstreams[1]}`);
  conf = replaceOnce(conf, /^(\s*)listen 80;$/m, `$1listen 127.0.0.1:${port};`);
  const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/${t}_temp;`).join('\n');
  return replaceOnce(conf, /^http \{$/m, `http {\n${temps}`);
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

export async function startNginx(nginx: string, upstreams: [number, number]) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ai-story-nginx-'));
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(conf, runnableNginxConf(readFileSync(NGINX_CONF, 'utf8'), { port, upstreams, dir }));
  const child: ChildProcess = spawn(nginx, ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const base = `http://127.0.0.1:${port}`;
  const errors = () => (existsSync(path.join(dir, 'error.log')) ? readFileSync(path.join(dir, 'error.log'), 'utf8') : '');
  for (const until = Date.now() + 20_000; !(await fetch(`${base}/nginx-healthz`).then((r) => r.ok, () => false)); ) {
    if (child.exitCode !== null || Date.now() > until) {
      child.kill('SIGKILL');
      throw new Error(`nginx did not start: ${errors().slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    errors,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM'); // fast shutdown: the master stops its workers
      await exit;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

