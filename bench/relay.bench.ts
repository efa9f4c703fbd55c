/**
 * Relay benchmark (not a test): the simulated upstream read directly (the limit) against the same
 * load through the studio (start a run, follow its events), side by side in one run.
 *
 *   npm run bench                    all benchmarks
 *   node --import tsx bench/relay.bench.ts [--streams 1,64,100,1000]
 *
 * The studio and the upstream run as child processes so the studio's CPU and memory are its own.
 * Per-token delivery delay uses the send time the upstream stamps into each token (`stamp` quirk).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createParser } from 'eventsource-parser';

const root = path.resolve(import.meta.dirname, '..');
const STAMP = /\u0002([\d.]+)\u0003/g;

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

async function waitFor(url: string, ms = 60_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await fetch(url).then((r) => r.status < 500, () => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer`);
}

/** CPU (ms) and resident memory of a child process, from /proc. */
function procStats(pid: number) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(status.match(new RegExp(`${field}:\\s+(\\d+)`))?.[1] ?? 0);
  return { cpuMs: (ticks * 1000) / 100, rssMb: kb('VmRSS') / 1024 };
}

const pct = (values: number[], p: number) => {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

interface StreamMeasure {
  ttftMs: number;
  delays: number[];
  wireBytes: number;
  textBytes: number;
  /** Wire bytes the stamps themselves take (`\u0002…\u0003` escaped in JSON), left out of ratios. */
  stampWireBytes: number;
  tokens: number;
}

/** Reads an SSE body, handing each data payload to `onData`; returns the bytes received. */
async function readSse(res: Response, onData: (data: string) => void): Promise<number> {
  let bytes = 0;
  const decoder = new TextDecoder();
  const parser = createParser({ onEvent: (e) => onData(e.data) });
  for await (const chunk of res.body!) {
    bytes += chunk.byteLength;
    parser.feed(decoder.decode(chunk, { stream: true }));
  }
  return bytes;
}

function collectStamps(text: string, arrived: number, m: StreamMeasure) {
  let n = 0;
  for (const stamp of text.matchAll(STAMP)) {
    m.delays.push(arrived - Number(stamp[1]));
    m.stampWireBytes += stamp[0].length + 10;
    n++;
  }
  return n;
}

async function directStream(upstream: string, model: string): Promise<StreamMeasure> {
  const t0 = performance.timeOrigin + performance.now();
  const res = await fetch(`${upstream}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer bench' },
    body: JSON.stringify({ model, stream: true, messages: [{ role: 'user', content: `bench ${Math.random()}` }] }),
  });
  const m: StreamMeasure = { ttftMs: NaN, delays: [], wireBytes: 0, textBytes: 0, stampWireBytes: 0, tokens: 0 };
  let text = '';
  m.wireBytes = await readSse(res, (data) => {
    if (data === '[DONE]') return;
    const content = JSON.parse(data).choices?.[0]?.delta?.content;
    if (!content) return;
    const now = performance.timeOrigin + performance.now();
    if (Number.isNaN(m.ttftMs)) m.ttftMs = now - t0;
    m.tokens += collectStamps(content, now, m);
    text += content;
  });
  m.textBytes = Buffer.byteLength(text.replace(STAMP, ''));
  return m;
}

async function studioStream(base: string, token: string, projectId: string, providerId: string): Promise<StreamMeasure> {
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const t0 = performance.timeOrigin + performance.now();
  const started = await fetch(`${base}/api/v1/projects/${projectId}/stages/rewrite/runs/`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ input: { original_text: `bench ${Math.random()}` }, provider_id: providerId }),
  });
  if (started.status !== 202) throw new Error(`start failed: ${started.status} ${await started.text()}`);
  const run = (await started.json()) as { id: string };
  const res = await fetch(`${base}/api/v1/runs/${run.id}/events`, { headers: { authorization: `Bearer ${token}` } });
  const m: StreamMeasure = { ttftMs: NaN, delays: [], wireBytes: 0, textBytes: 0, stampWireBytes: 0, tokens: 0 };
  let text = '';
  m.wireBytes = await readSse(res, (data) => {
    const event = JSON.parse(data);
    if (event.type !== 'token') return;
    const now = performance.timeOrigin + performance.now();
    if (Number.isNaN(m.ttftMs)) m.ttftMs = now - t0;
    m.tokens += collectStamps(event.content, now, m);
    text += event.content;
  });
  m.textBytes = Buffer.byteLength(text.replace(STAMP, ''));
  return m;
}

function summarize(label: string, ms: StreamMeasure[]) {
  const delays = ms.flatMap((m) => m.delays);
  return {
    label,
    streams: ms.length,
    ttft_p50: pct(ms.map((m) => m.ttftMs), 50),
    ttft_p99: pct(ms.map((m) => m.ttftMs), 99),
    delay_p50: pct(delays, 50),
    delay_p99: pct(delays, 99),
    tokens: ms.reduce((a, m) => a + m.tokens, 0),
    wire_per_text: ms.reduce((a, m) => a + m.wireBytes - m.stampWireBytes, 0) / Math.max(1, ms.reduce((a, m) => a + m.textBytes, 0)),
  };
}

/** A fresh database on the PostgreSQL server at `serverUrl`, for the studio's PostgreSQL mode. */
async function benchDatabase(serverUrl: string) {
  const { default: postgres } = await import('postgres');
  const name = `ai_story_bench_${Date.now()}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const a = postgres(serverUrl, { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}

export async function runRelayBench(streamCounts = [1, 64, 100, 1000], db: 'pglite' | 'postgres' = 'pglite') {
  console.log(`(studio database: ${db})`);
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ai-story-bench-'));
  const pg = db === 'postgres' ? await benchDatabase(process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres') : null;
  const upstreamPort = await freePort();
  const studioPort = await freePort();
  const children: ChildProcess[] = [];
  const spawnNode = (args: string[], env: Record<string, string> = {}, nodeFlags: string[] = []) => {
    const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(child);
    return child;
  };
  try {
    spawnNode(['tools/fake-llm/src/cli.ts', '--port', String(upstreamPort)]);
    const upstream = `http://127.0.0.1:${upstreamPort}/v1`;
    const studio = spawnNode(['apps/server/src/main.ts'], {
      PORT: String(studioPort),
      DATA_DIR: dataDir,
      ...(pg && { DATABASE_URL: pg.url }),
      ADMIN_EMAIL: 'bench@example.com',
      ADMIN_PASSWORD: 'bench-password',
      LOG_LEVEL: 'warn',
    }, process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []);
    const base = `http://127.0.0.1:${studioPort}`;
    await waitFor(`${upstream}/models`);
    await waitFor(`${base}/healthz`);

    const login = await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'bench@example.com', password: 'bench-password' }) });
    const cookie = login.headers.get('set-cookie')!.split(';')[0];
    const tokenRes = await fetch(`${base}/api/v1/auth/tokens`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bench' }) });
    const token = ((await tokenRes.json()) as { token: string }).token;
    const api = (method: string, url: string, body?: unknown) =>
      fetch(base + url, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) }).then((r) => r.json() as Promise<any>);

    const model = 'fake-model?ttft=50&tps=20&tokens=500&quirk=stamp';
    const provider = await api('POST', '/api/v1/models/providers/', { name: 'bench upstream', api_url: upstream, model_name: model, timeout_s: 120 });
    const maxStreams = Math.max(...streamCounts);
    const projects: string[] = [];
    for (let i = 0; i < maxStreams; i += 50) {
      const batch = await Promise.all(Array.from({ length: Math.min(50, maxStreams - i) }, (_, j) => api('POST', '/api/v1/projects/', { name: `bench ${i + j}` })));
      projects.push(...batch.map((p) => p.id));
    }

    const rows: Record<string, unknown>[] = [];
    for (const n of streamCounts) {
      // Streams open over about a second (50 every 50 ms), as users arrive; a thousand connects in one
      // instant would only measure the kernel's accept queue.
      const ramp = <T>(i: number, f: () => Promise<T>) => new Promise<T>((resolve, reject) => setTimeout(() => f().then(resolve, reject), Math.floor(i / 50) * 50));
      const direct = summarize('direct', await Promise.all(Array.from({ length: n }, (_, i) => ramp(i, () => directStream(upstream, model)))));
      const before = procStats(studio.pid!);
      let peakRss = before.rssMb;
      const sampler = setInterval(() => (peakRss = Math.max(peakRss, procStats(studio.pid!).rssMb)), 100);
      const through = summarize('studio', await Promise.all(projects.slice(0, n).map((id, i) => ramp(i, () => studioStream(base, token, id, provider.id)))));
      clearInterval(sampler);
      const after = procStats(studio.pid!);
      const cpuMs = after.cpuMs - before.cpuMs;
      rows.push({
        streams: n,
        'ttft p50 direct/studio ms': `${direct.ttft_p50.toFixed(0)} / ${through.ttft_p50.toFixed(0)}`,
        'delay p50 direct/studio ms': `${direct.delay_p50.toFixed(2)} / ${through.delay_p50.toFixed(2)}`,
        'delay p99 direct/studio ms': `${direct.delay_p99.toFixed(2)} / ${through.delay_p99.toFixed(2)}`,
        'added p50/p99 ms': `${(through.delay_p50 - direct.delay_p50).toFixed(2)} / ${(through.delay_p99 - direct.delay_p99).toFixed(2)}`,
        'studio CPU ms per 1k tokens': ((cpuMs / Math.max(1, through.tokens)) * 1000).toFixed(1),
        'studio peak RSS MB': peakRss.toFixed(0),
        'wire/text direct': direct.wire_per_text.toFixed(1),
        'wire/text studio': through.wire_per_text.toFixed(2),
      });
      console.table([rows.at(-1)]);
    }

    // One long Chinese stream at 200 tokens/s: our deltas against the OpenAI wire and the seed's full_text events.
    const fast = await api('POST', '/api/v1/models/providers/', { name: 'bench 2000', api_url: upstream, model_name: 'fake-model?ttft=20&tps=200&tokens=2000', timeout_s: 120 });
    const direct = await directStream(upstream, 'fake-model?ttft=20&tps=200&tokens=2000');
    const ours = await studioStream(base, token, projects[0], fast.id);
    const seed = seedWireBytes(2000, ours.textBytes);
    const long = {
      'text UTF-8 bytes': ours.textBytes,
      'studio wire bytes': ours.wireBytes,
      'studio wire/text': (ours.wireBytes / ours.textBytes).toFixed(2),
      'OpenAI wire/text': (direct.wireBytes / direct.textBytes).toFixed(1),
      'seed full_text wire/text (computed)': (seed / ours.textBytes).toFixed(0),
    };
    console.table([long]);
    return { rows, long };
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 1000));
    rmSync(dataDir, { recursive: true, force: true });
    await pg?.drop();
  }
}

/** The seed sent `{"type":"token","content":…,"full_text":…}` per token: the text so far, every time. */
function seedWireBytes(tokens: number, textBytes: number) {
  const perToken = textBytes / tokens;
  let total = 0;
  for (let i = 1; i <= tokens; i++) total += 'data: {"type":"token","content":"","full_text":""}\n\n'.length + perToken + perToken * i;
  return total;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = process.argv.indexOf('--streams');
  const counts = arg > 0 ? process.argv[arg + 1].split(',').map(Number) : undefined;
  const dbArg = process.argv.indexOf('--db');
  await runRelayBench(counts, dbArg > 0 && process.argv[dbArg + 1] === 'postgres' ? 'postgres' : 'pglite');
}
