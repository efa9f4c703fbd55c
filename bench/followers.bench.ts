/**
 * Scale-out under followers (not a test): many readers of few live runs, through one studio and
 * through two studios behind deploy/nginx.conf sharing PostgreSQL and Redis, side by side in one run.
 *
 *   node --import tsx bench/followers.bench.ts [--runs 200] [--followers 25]
 *
 * Each run is a rewrite of 100 tokens at 10 tokens/s after 200 ms (the upstream stamps its send time
 * into every token, `stamp` quirk); its followers open `GET /runs/{id}/events` right after the start,
 * spread over two seconds. Per token received: arrival − upstream send time. Also: the studios' CPU per
 * 1,000 events delivered, peak RSS, and (scale-out) Redis memory per live run. The load generator
 * shares the machine: on 2 cores it takes a large part of it, which the delay includes.
 * Needs nginx (node scripts/ensure-system.mjs), PostgreSQL and Redis on 127.0.0.1; open files: the
 * client holds one socket per follower, nginx two (see README, "Open files").
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { findNginx, startNginx } from '../apps/server/test/local-nginx.ts';
import { benchApi, benchDatabase, freePort, now, pct, procStats, spawnNode, spawnStudio, waitFor } from './relay.bench.ts';

const TOKENS = 100;
const MODEL = `fake-model?ttft=200&tps=10&tokens=${TOKENS}&quirk=stamp`;
const RAMP_MS = 2_000;
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** The upstream's send-time stamp as it travels in an event's JSON (its control characters escaped). */
const WIRE_STAMP = /\\u0002([\d.]+)\\u0003/g;

interface Follower {
  tokens: number;
  delays: number[];
  complete: boolean;
  error?: string;
}

/** A follower that only looks for stamps and the end: a full SSE parse per event would make the client the bottleneck. */
async function follow(url: string, token: string): Promise<Follower> {
  const f: Follower = { tokens: 0, delays: [], complete: false };
  try {
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
    if (res.status !== 200) throw new Error(`status ${res.status}`);
    const decoder = new TextDecoder();
    let tail = '';
    for await (const chunk of res.body!) {
      const arrived = now();
      // Whole events only (they end with a blank line); the rest waits for the next chunk.
      const text = tail + decoder.decode(chunk, { stream: true });
      const end = text.lastIndexOf('\n\n') + 2;
      tail = text.slice(end);
      const whole = text.slice(0, end);
      for (const event of whole.split('\n\n')) {
        // Only token events: the final ones carry the whole text again.
        if (event.includes('{"type":"token"')) {
          for (const m of event.matchAll(WIRE_STAMP)) {
            f.delays.push(arrived - Number(m[1]));
            f.tokens++;
          }
        } else if (event.includes('"type":"done"')) f.complete = true;
      }
    }
  } catch (err) {
    f.error = (err as Error).message;
  }
  return f;
}

interface Studio {
  base: string;
  pid: number;
}

async function startStudios(count: number, env: Record<string, string>, children: ChildProcess[], cleanups: (() => Promise<void>)[]): Promise<Studio[]> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ai-story-bench-'));
  cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
  const pg = await benchDatabase(process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  cleanups.push(pg.drop);
  const studios: Studio[] = [];
  for (let i = 0; i < count; i++) {
    const port = await freePort();
    const child = spawnStudio(children, {
      PORT: String(port),
      DATA_DIR: dataDir,
      DATABASE_URL: pg.url,
      ADMIN_EMAIL: 'bench@example.com',
      ADMIN_PASSWORD: 'bench-password',
      LOG_LEVEL: 'warn',
      ...env,
    });
    studios.push({ base: `http://127.0.0.1:${port}`, pid: child.pid! });
    // One after the other: the first migrates the database and creates the admin.
    await waitFor(`${studios[i].base}/healthz`);
  }
  return studios;
}

async function signIn(base: string, upstream: string) {
  const { token, api } = await benchApi(base);
  const provider = await api('POST', '/api/v1/models/providers/', { name: `bench upstream ${Date.now()}`, api_url: upstream, model_name: MODEL, timeout_s: 120 });
  return { token, api, providerId: provider.id as string };
}

/** `runs` runs, each followed by `followers` readers through `base`; CPU and RSS of the studio processes. */
async function measure(label: string, base: string, studios: Studio[], upstream: string, runs: number, followers: number, redis?: Redis) {
  const { token, api, providerId } = await signIn(base, upstream);
  const projects: string[] = [];
  for (let i = 0; i < runs; i += 50) projects.push(...(await Promise.all(Array.from({ length: Math.min(50, runs - i) }, (_, j) => api('POST', '/api/v1/projects/', { name: `followers ${i + j}` })))).map((p) => p.id as string));
  const redisBefore = redis ? Number((await redis.info('memory')).match(/used_memory:(\d+)/)![1]) : 0;
  let redisPeak = redisBefore;
  const cpuBefore = studios.map((s) => procStats(s.pid).cpuMs);
  let peakRss = 0;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, ...studios.map((s) => procStats(s.pid).rssMb));
    void redis?.info('memory').then((m) => (redisPeak = Math.max(redisPeak, Number(m.match(/used_memory:(\d+)/)![1]))));
  }, 250);
  const started = now();
  const clientBefore = process.cpuUsage();
  const all = await Promise.all(
    projects.map(
      (projectId, i) =>
        new Promise<Follower[]>((resolve) =>
          setTimeout(async () => {
            const res = await fetch(`${base}/api/v1/projects/${projectId}/stages/rewrite/runs/`, {
              method: 'POST',
              headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
              body: JSON.stringify({ input: { original_text: `followers ${i} ${Math.random()}` }, provider_id: providerId }),
            });
            if (res.status !== 202) return resolve([{ tokens: 0, delays: [], complete: false, error: `start ${res.status}` }]);
            const run = (await res.json()) as { id: string };
            resolve(await Promise.all(Array.from({ length: followers }, () => follow(`${base}/api/v1/runs/${run.id}/events`, token))));
          }, (i * RAMP_MS) / runs),
        ),
    ),
  );
  clearInterval(sampler);
  const seconds = (now() - started) / 1000;
  const client = process.cpuUsage(clientBefore);
  const flat = all.flat();
  const delays = flat.flatMap((f) => f.delays);
  const cpuMs = studios.reduce((sum, s, i) => sum + procStats(s.pid).cpuMs - cpuBefore[i], 0);
  const events = flat.reduce((n, f) => n + f.tokens, 0);
  const failed = flat.filter((f) => !f.complete || f.tokens !== TOKENS);
  return {
    setup: label,
    followers: `${flat.length - failed.length}/${runs * followers} complete`,
    'token delay p50 ms': pct(delays, 50).toFixed(0),
    'token delay p99 ms': pct(delays, 99).toFixed(0),
    'studio CPU ms / 1k tokens delivered': ((cpuMs / Math.max(1, events)) * 1000).toFixed(1),
    'peak RSS MB (largest studio)': peakRss.toFixed(0),
    // The load generator's share of the two cores: what the studios could not have.
    'bench client CPU s': ((client.user + client.system) / 1e6).toFixed(1),
    'Redis KB per live run': redis ? ((redisPeak - redisBefore) / 1024 / runs).toFixed(1) : '–',
    'wall s': seconds.toFixed(1),
    ...(failed.length && { errors: [...new Set(failed.map((f) => f.error ?? `${f.tokens} tokens${f.complete ? '' : ', no end'}`))].slice(0, 3).join('; ') }),
  };
}

export async function runFollowersBench(runs = 200, followers = 25) {
  const nginx = findNginx();
  if (!nginx) throw new Error('nginx is not installed: node scripts/ensure-system.mjs installs it');
  const children: ChildProcess[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  const redis = new Redis(REDIS_URL);
  const prefix = `bench-${Date.now()}:`;
  try {
    const upstreamPort = await freePort();
    spawnNode(children, ['tools/fake-llm/src/cli.ts', '--port', String(upstreamPort)]);
    const upstream = `http://127.0.0.1:${upstreamPort}/v1`;
    await waitFor(`${upstream}/models`);
    console.log(`${runs} live runs × ${followers} followers; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} on ${os.cpus().length} cores`);
    const rows: Record<string, string>[] = [];

    const single = await startStudios(1, {}, children, cleanups);
    rows.push(await measure('one studio (PostgreSQL, no Redis)', single[0].base, single, upstream, runs, followers));
    console.table([rows.at(-1)]);
    for (const c of children.splice(1)) c.kill('SIGTERM');

    const pair = await startStudios(2, { REDIS_URL, REDIS_PREFIX: prefix, TRUST_PROXY: '127.0.0.1' }, children, cleanups);
    const proxy = await startNginx(nginx, [Number(new URL(pair[0].base).port), Number(new URL(pair[1].base).port)]);
    cleanups.push(proxy.stop);
    rows.push(await measure('two studios + Redis behind nginx', proxy.base, pair, upstream, runs, followers, redis));
    console.table(rows);
    return rows;
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null)));
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { runs: { type: 'string' }, followers: { type: 'string' } } });
  await runFollowersBench(Number(values.runs ?? 200), Number(values.followers ?? 25));
}
