#!/usr/bin/env node
// Makes sure this machine has what the test suite needs beyond node_modules:
//   - Debian's Chromium at /usr/bin/chromium (Playwright drives it; we never download a browser),
//   - CJK fonts (zh-CN pages must render real glyphs in screenshots, not boxes),
//   - the media tools: ffmpeg/ffprobe (renders, probes) and espeak-ng (the offline voice),
//   - a reachable PostgreSQL server where the current user may create databases (the integration
//     tests run a second time against it, one database per test file),
//   - a reachable Redis server (the scale-out tests: event streams, shared limits, job queues),
//   - nginx (the scale-out test runs deploy/nginx.conf in front of two studios; it starts its own
//     nginx on a free port, so the package's system service is not needed).
// It installs what is missing with apt when it can (root, or sudo without a password); otherwise it
// stops with a message naming exactly what to install. It never skips a requirement quietly.
//
// Usage: node scripts/ensure-system.mjs [--check]   (--check: report only, install nothing)
// Env:   TEST_DATABASE_URL  the PostgreSQL server to check (default below)
//        TEST_REDIS_URL     the Redis server to check (default redis://127.0.0.1:6379)
//        CHROMIUM_PATH      use this Chromium instead of Debian's /usr/bin/chromium

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
// CHROMIUM_PATH (also read by playwright.config.ts) points at another Chromium build, e.g. off Debian.
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHECK_ONLY = process.argv.includes('--check');

const log = (msg) => console.log(`[ensure-system] ${msg}`);
const problems = [];

/** Thrown for a requirement we could not meet: the message says what a person should do. */
class Unmet extends Error {}

// ---------------------------------------------------------------- privileges and apt

const isRoot = process.getuid?.() === 0;
const hasCommand = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const canSudo = !isRoot && hasCommand('sudo') && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0;
const canInstall = !CHECK_ONLY && hasCommand('apt-get') && (isRoot || canSudo);

/** Runs a command as root (directly or through sudo), streaming its output; throws on failure. */
function asRoot(cmd, args, opts = {}) {
  const [file, argv] = isRoot ? [cmd, args] : ['sudo', ['-n', '--preserve-env=DEBIAN_FRONTEND', cmd, ...args]];
  const res = spawnSync(file, argv, {
    stdio: opts.capture ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    encoding: 'utf8',
  });
  if (res.status !== 0) {
    const detail = opts.capture ? `\n${res.stdout ?? ''}${res.stderr ?? ''}` : '';
    throw new Error(`${cmd} ${args.join(' ')} exited with ${res.status ?? res.signal}${detail}`);
  }
  return res.stdout ?? '';
}

function debInstalled(pkg) {
  const res = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return res.status === 0 && res.stdout.includes('install ok installed');
}

let aptUpdated = false;
function aptInstall(pkgs) {
  if (!canInstall) {
    const why = CHECK_ONLY ? '--check was given' : 'this is not root, sudo -n is unavailable, or apt-get is missing';
    throw new Unmet(`missing Debian packages: ${pkgs.join(' ')} (cannot install: ${why}).\n` +
      `    Install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${pkgs.join(' ')}`);
  }
  if (!aptUpdated) {
    log('apt-get update');
    asRoot('apt-get', ['update']);
    aptUpdated = true;
  }
  log(`apt-get install ${pkgs.join(' ')}`);
  asRoot('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs]);
}

// ---------------------------------------------------------------- browser and fonts

function ensureBrowserAndFonts() {
  const missing = [];
  if (process.env.CHROMIUM_PATH) {
    if (!existsSync(CHROMIUM)) throw new Unmet(`CHROMIUM_PATH=${CHROMIUM} does not exist`);
  } else if (!existsSync(CHROMIUM) || !debInstalled('chromium')) {
    missing.push('chromium');
  }
  if (!debInstalled('fonts-noto-cjk')) missing.push('fonts-noto-cjk');
  if (missing.length) aptInstall(missing);
  if (!existsSync(CHROMIUM)) throw new Unmet(`${CHROMIUM} is still missing after installing chromium`);
  const version = spawnSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).stdout?.trim();
  log(`ok: ${version || CHROMIUM}, fonts-noto-cjk`);
}

// ---------------------------------------------------------------- media tools (DESIGN §9)

function ensureMediaTools() {
  const missing = [];
  if (!hasCommand('ffmpeg') || !hasCommand('ffprobe')) missing.push('ffmpeg');
  if (!hasCommand('espeak-ng')) missing.push('espeak-ng');
  if (missing.length) aptInstall(missing);
  const version = spawnSync('ffmpeg', ['-version'], { encoding: 'utf8' }).stdout?.split('\n')[0];
  log(`ok: ${version || 'ffmpeg'}, espeak-ng`);
}

// ---------------------------------------------------------------- nginx (deploy/nginx.conf)

// Debian puts nginx in /usr/sbin, which is not on every user's PATH.
const hasNginx = () => hasCommand('nginx') || existsSync('/usr/sbin/nginx');

function ensureNginx() {
  if (!hasNginx()) aptInstall(['nginx']);
  if (!hasNginx()) throw new Unmet('nginx is still missing after installing nginx');
  const nginx = hasCommand('nginx') ? 'nginx' : '/usr/sbin/nginx';
  // `nginx -v` prints to stderr.
  const version = spawnSync(nginx, ['-v'], { encoding: 'utf8' }).stderr?.trim();
  log(`ok: ${version || 'nginx'}`);
}

// ---------------------------------------------------------------- PostgreSQL

const redact = (url) => url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');

function tcpReachable(host, port, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => { socket.destroy(); resolve(ok); };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** The `postgres` client the server uses; resolved from the server workspace (hoisted or not). */
function loadPostgresClient() {
  try {
    return createRequire(path.join(ROOT, 'apps/server/package.json'))('postgres');
  } catch {
    return null;
  }
}

/**
 * One real round trip: connect, authenticate, query. Returns { ok, version?, canCreateDb?, error?, auth? }.
 * Falls back to psql when node_modules is not installed yet.
 */
async function probePostgres(url) {
  const postgres = loadPostgresClient();
  if (postgres) {
    const sql = postgres(url, { max: 1, connect_timeout: 5, idle_timeout: 1, onnotice: () => {} });
    try {
      const [row] = await sql`select current_setting('server_version') as version,
        (select rolsuper or rolcreatedb from pg_roles where rolname = current_user) as can_create_db`;
      return { ok: true, version: row.version, canCreateDb: row.can_create_db };
    } catch (err) {
      return { ok: false, error: err.message, auth: isAuthError(err) };
    } finally {
      await sql.end({ timeout: 1 }).catch(() => {});
    }
  }
  if (hasCommand('psql')) {
    const res = spawnSync('psql', [url, '-XAtc',
      "select current_setting('server_version') || '|' || (select rolsuper or rolcreatedb from pg_roles where rolname = current_user)"],
    { encoding: 'utf8', env: { ...process.env, PGCONNECT_TIMEOUT: '5' } });
    if (res.status === 0) {
      const [version, flag] = res.stdout.trim().split('|');
      return { ok: true, version, canCreateDb: flag === 't' };
    }
    return { ok: false, error: res.stderr.trim(), auth: isAuthError({ message: res.stderr }) };
  }
  throw new Unmet('cannot query PostgreSQL: neither node_modules (run `npm ci`) nor psql is available');
}

function isAuthError(err) {
  return ['28P01', '28000'].includes(err.code) || /password|authentication|pg_hba|no such user|role .* does not exist/i.test(err.message ?? '');
}

/** Debian clusters from pg_lsclusters: [{ version, name, port, status }]. */
function listClusters() {
  if (!hasCommand('pg_lsclusters')) return [];
  const out = spawnSync('pg_lsclusters', ['--no-header'], { encoding: 'utf8' }).stdout ?? '';
  return out.split('\n').filter(Boolean).map((line) => {
    const [version, name, port, status] = line.trim().split(/\s+/);
    return { version, name, port: Number(port), status };
  });
}

function newestInstalledServer() {
  const dir = '/usr/lib/postgresql';
  if (!existsSync(dir)) return null;
  const versions = readdirSync(dir).filter((v) => existsSync(path.join(dir, v, 'bin/postgres')));
  return versions.sort((a, b) => Number(b) - Number(a))[0] ?? null;
}

const HBA_MARK = '# added by scripts/ensure-system.mjs: test runs on this machine connect over loopback without a password';

/** Lets local loopback connections in without a password (a throwaway test server; see the marker line). */
function trustLoopback(cluster) {
  const hba = `/etc/postgresql/${cluster.version}/${cluster.name}/pg_hba.conf`;
  if (!existsSync(hba)) throw new Unmet(`cannot find ${hba} to allow password-less loopback connections`);
  const text = readFileSync(hba, 'utf8');
  if (text.includes(HBA_MARK)) return false;
  log(`allowing trust auth for 127.0.0.1 and ::1 in ${hba}`);
  // Written beside, then copied as root: keeps the file's owner and works through sudo as well.
  const draft = path.join(mkdtempSync(path.join(os.tmpdir(), 'pg-hba-')), 'pg_hba.conf');
  writeFileSync(draft, `${HBA_MARK}\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n\n${text}`);
  asRoot('cp', [draft, hba]);
  asRoot('pg_ctlcluster', ['--skip-systemctl-redirect', cluster.version, cluster.name, 'reload']);
  return true;
}

function startCluster(cluster) {
  log(`starting PostgreSQL cluster ${cluster.version}/${cluster.name} (port ${cluster.port})`);
  asRoot('pg_ctlcluster', ['--skip-systemctl-redirect', cluster.version, cluster.name, 'start']);
}

async function waitForPostgres(url, seconds) {
  let last;
  for (let i = 0; i < seconds; i++) {
    last = await probePostgres(url);
    if (last.ok || last.auth) return last;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return last;
}

async function ensurePostgres() {
  const url = process.env.TEST_DATABASE_URL || DEFAULT_DATABASE_URL;
  const { hostname, port: portText } = new URL(url);
  const host = hostname.replace(/^\[|\]$/g, '');
  const port = Number(portText || 5432);
  const local = ['127.0.0.1', 'localhost', '::1'].includes(host);
  const fixHint = `    Install and start PostgreSQL (Debian: apt-get install -y postgresql && pg_ctlcluster --skip-systemctl-redirect <version> main start),\n` +
    `    allow the test user in (e.g. "host all all 127.0.0.1/32 trust" in pg_hba.conf), or set TEST_DATABASE_URL to a server you can use.`;

  let probe = (await tcpReachable(host, port)) ? await probePostgres(url) : { ok: false, error: `nothing listens on ${host}:${port}` };

  if (!probe.ok && local && !CHECK_ONLY && (isRoot || canSudo)) {
    // Install the server when there is none, then start the cluster that owns this port.
    if (!newestInstalledServer()) aptInstall(['postgresql']);
    let cluster = listClusters().find((c) => c.port === port);
    if (!cluster && port === 5432 && listClusters().length === 0) {
      const version = newestInstalledServer();
      log(`creating PostgreSQL cluster ${version}/main`);
      asRoot('pg_createcluster', [version, 'main', '--port', String(port)]);
      cluster = listClusters().find((c) => c.port === port);
    }
    if (!cluster) {
      throw new Unmet(`PostgreSQL at ${redact(url)} is unreachable (${probe.error}) and no local cluster uses port ${port}.\n${fixHint}`);
    }
    if (cluster.status !== 'online') startCluster(cluster);
    probe = await waitForPostgres(url, 30);
    if (!probe.ok && probe.auth && !new URL(url).password) {
      trustLoopback(cluster);
      probe = await waitForPostgres(url, 10);
    }
  }

  if (!probe.ok) {
    throw new Unmet(`PostgreSQL at ${redact(url)} is not usable: ${probe.error}\n${fixHint}`);
  }
  if (!probe.canCreateDb) {
    throw new Unmet(`the user in ${redact(url)} may not create databases (the integration tests create one per file).\n` +
      `    Grant it: ALTER ROLE <user> CREATEDB; or point TEST_DATABASE_URL at a superuser.`);
  }
  log(`ok: PostgreSQL ${probe.version} at ${redact(url)}`);
}

// ---------------------------------------------------------------- Redis

const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** PING over a raw socket: the answer is `+PONG`, or `-NOAUTH …` when a password is needed. */
function pingRedis(host, port, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let answer = '';
    const done = (result) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done({ ok: false, error: 'no answer' }));
    socket.on('error', (err) => done({ ok: false, error: err.code ?? err.message }));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString();
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG') ? { ok: true } : { ok: false, error: answer.trim() });
    });
  });
}

async function ensureRedis() {
  const url = new URL(process.env.TEST_REDIS_URL || DEFAULT_REDIS_URL);
  const host = url.hostname;
  const port = Number(url.port || 6379);
  const fixHint = '    Install and start Redis 7 (Debian: apt-get install -y redis-server && redis-server --daemonize yes).';
  let probe = await pingRedis(host, port);
  const local = host === '127.0.0.1' || host === 'localhost';
  if (!probe.ok && local && !CHECK_ONLY && probe.error === 'ECONNREFUSED') {
    if (!hasCommand('redis-server')) aptInstall(['redis-server']);
    log(`starting redis-server on port ${port}`);
    asRoot('redis-server', ['--port', String(port), '--daemonize', 'yes', '--save', '', '--appendonly', 'no']);
    for (let i = 0; i < 50 && !probe.ok; i++) {
      await new Promise((r) => setTimeout(r, 200));
      probe = await pingRedis(host, port);
    }
  }
  if (!probe.ok) throw new Unmet(`Redis at ${host}:${port} is not usable (${probe.error}).\n${fixHint}`);
  log(`ok: Redis at ${host}:${port}`);
}

// ---------------------------------------------------------------- main

for (const step of [ensureBrowserAndFonts, ensureMediaTools, ensureNginx, ensurePostgres, ensureRedis]) {
  try {
    await step();
  } catch (err) {
    problems.push(err instanceof Unmet ? err.message : `${step.name}: ${err.message}`);
  }
}

if (problems.length) {
  console.error(`[ensure-system] this machine is missing what the tests need:`);
  for (const p of problems) console.error(`  - ${p}`);
  process.exit(1);
}
log('system ready');
