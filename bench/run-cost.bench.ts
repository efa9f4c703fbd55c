/**
 * What one run costs to start and finish (not a test): 3-token runs of the rewrite stage, one after
 * another from 20 clients at once, each a start request and its event stream read to `done`. A run
 * this short is almost only its start and its finish, so the CPU per run is theirs: the studio's own
 * (from /proc), the whole machine's, and the parts of it that PostgreSQL (every `postgres` process on
 * the machine: keep others' databases quiet meanwhile), the simulated upstream and this client spent;
 * and the studio's write system calls per run (its round trips to PostgreSQL among them: two answers
 * a socket write carries together count once, so a change in batching shows here, noise-free).
 *
 *   node --import tsx bench/run-cost.bench.ts [--runs 1000] [--rounds 3] [--db postgres|pglite]
 *
 * BENCH_BASELINE_ROOT=<checkout> measures that checkout's studio too, round by round in turn with this
 * one (run `npm ci` there first): the two columns of one run are what a change is judged by.
 * BENCH_DATABASE_URL, BENCH_BASELINE_DATABASE_URL and BENCH_PROJECT_KB (projects with a finished
 * story's weight, what a user's start and ending read) as in relay.bench.ts.
 * BENCH_CPU_PROF=<dir> writes a CPU profile of each studio (`bench/profile-top.ts --by-package`).
 * BENCH_WARMUP=<n> runs before the first round (default 2,000: a warm server's cost, not its JIT's).
 * Each round also measures bench/bare-relay.ts, the same two requests and upstream call with nothing
 * behind them: what a run costs any Node relay here, against what the studio adds.
 */
import type { ChildProcess } from 'node:child_process';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { baselineOptions, freePort, inTurn, machineBusyMs, postgresCpuMs, procStats, spawnNode, startBareRelay, startStudio, waitFor, type DbKind, type Studio } from './relay.bench.ts';

const CLIENTS = 20;
const MODEL = 'fake-model?ttft=0&tps=1000&tokens=3';
/**
 * Runs before the first round (BENCH_WARMUP). V8 keeps compiling the studio's hot code for hundreds of
 * runs: after 200, two rounds measured 5.8 and 3.8 ms of studio CPU per run, with the optimizing
 * compiler busy through both; after 3,000, three rounds measured 3.2, 3.2 and 2.8 ms.
 */
const WARMUP_RUNS = Number(process.env.BENCH_WARMUP ?? 2000);

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

/**
 * One round of `runs` runs through `s`, from CLIENTS clients (one project each, so no start waits for
 * another's run to end): what they cost each, the relay's CPU and where the rest of the machine's went
 * (PostgreSQL, the simulated upstream, this client; what is left is the kernel and anything else running).
 */
async function measure(s: Studio, runs: number, upstreamPid: number) {
  let left = runs;
  const before = procStats(s.pid);
  const [upstream0, postgres0, client0] = [procStats(upstreamPid).cpuMs, postgresCpuMs(), process.cpuUsage()];
  const machine0 = machineBusyMs();
  const t0 = performance.now();
  await Promise.all(
    s.projects.map(async (projectId) => {
      while (left-- > 0) await oneRun(s, projectId);
    }),
  );
  const after = procStats(s.pid);
  const client = process.cpuUsage(client0);
  const f = (n: number) => (n / runs).toFixed(2);
  return {
    'relay CPU ms/run': f(after.cpuMs - before.cpuMs),
    'main thread CPU ms/run': f(after.mainCpuMs - before.mainCpuMs),
    'PostgreSQL CPU ms/run': f(postgresCpuMs() - postgres0),
    'upstream CPU ms/run': f(procStats(upstreamPid).cpuMs - upstream0),
    'client CPU ms/run': f((client.user + client.system) / 1000),
    'machine CPU ms/run': f(machineBusyMs() - machine0),
    'wall ms/run': f(performance.now() - t0),
    'relay writes/run': f(after.writes - before.writes),
  };
}

export async function runRunCostBench(runs = 1000, rounds = 3, db: DbKind = 'postgres') {
  const children: ChildProcess[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const upstreamPort = await freePort();
    const upstreamPid = spawnNode(children, ['tools/fake-llm/src/cli.ts', '--port', String(upstreamPort)]).pid!;
    const upstream = `http://127.0.0.1:${upstreamPort}/v1`;
    await waitFor(`${upstream}/models`);
    const common = { db, upstream, model: MODEL, projectCount: CLIENTS, children, cleanups };
    const studios = [await startStudio(common)];
    const baseline = process.env.BENCH_BASELINE_ROOT;
    if (baseline) studios.push(await startStudio({ ...common, ...baselineOptions(db, baseline) }));
    studios.push(await startBareRelay(upstream, CLIENTS, children, MODEL));
    for (const s of studios) await measure(s, WARMUP_RUNS, upstreamPid); // warm: the first runs pay for compiling and connecting
    console.log(`${runs} runs a round, ${CLIENTS} clients; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} on ${os.cpus().length} cores`);
    const rows: Record<string, unknown>[] = [];
    for (let round = 1; round <= rounds; round++) {
      // The one measured first in a round paid about 10 % more (same code either way).
      const measured = await inTurn(studios, round, (s) => measure(s, runs, upstreamPid));
      studios.forEach((s, i) => rows.push({ round, relay: s.label, ...measured[i] }));
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
  await runRunCostBench(Number(values.runs), Number(values.rounds), values.db as DbKind);
}
