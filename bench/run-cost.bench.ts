/**
 * What one run costs to start and finish (not a test): 3-token runs of the rewrite stage, one after
 * another from 20 clients at once, each a start request and its event stream read to `done`. A run
 * this short is almost only its start and its finish, so the CPU per run is theirs: the studio's own
 * (from /proc) and the whole machine's (PostgreSQL, the simulated upstream and this client included).
 *
 *   node --import tsx bench/run-cost.bench.ts [--runs 1000] [--rounds 3] [--db postgres|pglite]
 *
 * BENCH_BASELINE_ROOT=<checkout> measures that checkout's studio too, round by round in turn with this
 * one (run `npm ci` there first): the two columns of one run are what a change is judged by.
 * BENCH_CPU_PROF=<dir> writes a CPU profile of each studio (`bench/profile-top.ts --by-package`).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { benchApi, benchDatabase, freePort, procStats, spawnNode, waitFor } from './relay.bench.ts';

const CLIENTS = 20;
const root = path.resolve(import.meta.dirname, '..');

/** Busy CPU ms of the whole machine since boot (every core), from /proc/stat. */
function machineBusyMs() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = fields[3] + fields[4];
  return ((fields.reduce((a, b) => a + b, 0) - idle) * 1000) / 100; // USER_HZ is 100 on Linux
}

interface Studio {
  label: string;
  child: ChildProcess;
  base: string;
  token: string;
  providerId: string;
  projects: string[];
}

async function startStudio(label: string, studioRoot: string, db: 'postgres' | 'pglite', upstream: string, children: ChildProcess[], cleanups: (() => Promise<void>)[]): Promise<Studio> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ai-story-run-cost-'));
  cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
  const pg = db === 'postgres' ? await benchDatabase(process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres') : null;
  if (pg) cleanups.push(pg.drop);
  const port = await freePort();
  const profDir = process.env.BENCH_CPU_PROF;
  const child = spawnNode(
    children,
    ['apps/server/src/main.ts'],
    { PORT: String(port), DATA_DIR: dataDir, ...(pg && { DATABASE_URL: pg.url }), ADMIN_EMAIL: 'bench@example.com', ADMIN_PASSWORD: 'bench-password', LOG_LEVEL: 'warn' },
    ['--max-old-space-size=1536', ...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${path.join(profDir, label)}`] : [])],
    studioRoot,
  );
  const base = `http://127.0.0.1:${port}`;
  await waitFor(`${base}/healthz`);
  const { token, api } = await benchApi(base);
  const provider = await api('POST', '/api/v1/models/providers/', { name: 'bench upstream', api_url: upstream, model_name: 'fake-model?ttft=0&tps=1000&tokens=3', timeout_s: 120 });
  const projects = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => api('POST', '/api/v1/projects/', { name: `run cost ${i}` }).then((p) => p.id as string)));
  return { label, child, base, token, providerId: provider.id, projects };
}

async function oneRun(s: Studio, projectId: string) {
  const headers = { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' };
  const started = await fetch(`${s.base}/api/v1/projects/${projectId}/stages/rewrite/runs/`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ input: { original_text: `run cost ${Math.random()}` }, provider_id: s.providerId }),
  });
  if (started.status !== 202) throw new Error(`start failed: ${started.status} ${await started.text()}`);
  const { id } = (await started.json()) as { id: string };
  const events = await (await fetch(`${s.base}/api/v1/runs/${id}/events`, { headers })).text();
  if (!events.includes('"type":"done"')) throw new Error(`run ${id} did not end with done: ${events.slice(-300)}`);
}

/** `runs` runs from CLIENTS clients (one project each, so no start waits for another's run to end). */
async function measure(s: Studio, runs: number) {
  let left = runs;
  const cpu0 = procStats(s.child.pid!).cpuMs;
  const machine0 = machineBusyMs();
  const t0 = performance.now();
  await Promise.all(
    s.projects.map(async (projectId) => {
      while (left-- > 0) await oneRun(s, projectId);
    }),
  );
  const f = (ms: number) => (ms / runs).toFixed(2);
  return { 'studio CPU ms/run': f(procStats(s.child.pid!).cpuMs - cpu0), 'machine CPU ms/run': f(machineBusyMs() - machine0), 'wall ms/run': f(performance.now() - t0) };
}

export async function runRunCostBench(runs = 1000, rounds = 3, db: 'postgres' | 'pglite' = 'postgres') {
  const children: ChildProcess[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const upstreamPort = await freePort();
    spawnNode(children, ['tools/fake-llm/src/cli.ts', '--port', String(upstreamPort)]);
    const upstream = `http://127.0.0.1:${upstreamPort}/v1`;
    await waitFor(`${upstream}/models`);
    const studios = [await startStudio(db, root, db, upstream, children, cleanups)];
    const baseline = process.env.BENCH_BASELINE_ROOT;
    if (baseline) studios.push(await startStudio(`${db}@baseline`, baseline, db, upstream, children, cleanups));
    for (const s of studios) await measure(s, 200); // warm: the first runs pay for compiling and connecting
    console.log(`${runs} runs a round, ${CLIENTS} clients; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} on ${os.cpus().length} cores`);
    const rows: Record<string, unknown>[] = [];
    for (let round = 1; round <= rounds; round++) {
      for (const s of studios) rows.push({ round, studio: s.label, ...(await measure(s, runs)) });
    }
    console.table(rows);
    return rows;
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null)));
    for (const cleanup of cleanups) await cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '1000' }, rounds: { type: 'string', default: '3' }, db: { type: 'string', default: 'postgres' } } });
  await runRunCostBench(Number(values.runs), Number(values.rounds), values.db as 'postgres' | 'pglite');
}
