/**
 * CPU cost of reading an upstream token stream, per way of reading it:
 *   raw      global fetch + eventsource-parser + JSON.parse: the least a fetch reader can cost;
 *   http     the same over node:http (an IncomingMessage read as text): the least a reader costs the
 *            way streamChat reads, so streamChat's own share per token is the difference;
 *   sdk      the openai SDK's own stream iterator over global fetch (`for await (const chunk of stream)`);
 *   client   streamChat: what the studio runs (SDK request over node:http, the IncomingMessage read with
 *            eventsource-parser, timers, accounting). Paced, it costs less than `raw`: a fetch body's
 *            per-read cost outweighs everything streamChat adds (providers/node-fetch.ts);
 *   thread   streamChat on its reader thread, as the studio calls it (LlmStreamThread): `client` plus
 *            handing the deltas across, on both threads.
 * The simulated upstream runs in a child process, so process.cpuUsage() here counts the client only
 * (all of its threads).
 *
 *   node --import tsx bench/llm-client.bench.ts [--streams 50] [--tokens 600] [--tps 250] [--rounds 3]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createParser } from 'eventsource-parser';
import OpenAI from 'openai';
import { streamChat, type StreamChatParams, type LlmDelta, type LlmResult } from '../apps/server/src/providers/llm-client.ts';
import { LlmStreamThread } from '../apps/server/src/providers/llm-stream-thread.ts';

export interface LlmClientBenchOptions {
  /** Concurrent streams per measurement. */
  streams?: number;
  /** Tokens per stream. */
  tokens?: number;
  /** Tokens per second per stream in the paced scenario (each token its own network write). */
  tps?: number;
  /** Measurements per variant and scenario, interleaved; the median is reported. */
  rounds?: number;
}

export type Scenario = 'paced' | 'burst';

export interface LlmClientBenchRow {
  scenario: Scenario;
  variant: 'raw' | 'http' | 'sdk' | 'client' | 'thread';
  label: string;
  tokens: number;
  cpu_ms: number;
  wall_ms: number;
  cpu_ms_per_1k_tokens: number;
  tokens_per_cpu_s: number;
}

export interface LlmClientBenchResult {
  options: Required<LlmClientBenchOptions>;
  rows: LlmClientBenchRow[];
  /** Per scenario: streamChat's CPU per token over the raw fetch reader's and over the bare node:http reader's, the SDK iterator's and the reader thread's over streamChat's. */
  ratios: Record<Scenario, { client_over_raw: number; client_over_http: number; sdk_over_client: number; thread_over_client: number }>;
  note: string;
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function startUpstream(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'tools/fake-llm/src/cli.ts', '--port', '0'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /listening: (\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`fake-llm exited (${code}) before listening`)));
  });
  return { url, child };
}

type Reader = (url: string, model: string, prompt: string) => Promise<number>;

/** What the bare readers ask for: a streamed chat completion, usage included, as streamChat asks. */
const chatBody = (model: string, prompt: string) =>
  JSON.stringify({ model, messages: [{ role: 'user', content: prompt }], stream: true, stream_options: { include_usage: true } });

/** The bare readers' parsing: eventsource-parser and one JSON.parse per event, counting content deltas. */
function contentCounter() {
  let n = 0;
  const parser = createParser({
    onEvent(ev) {
      if (ev.data === '[DONE]') return;
      if (JSON.parse(ev.data).choices?.[0]?.delta?.content) n++;
    },
  });
  return { feed: (text: string) => parser.feed(text), count: () => n };
}

/** (a) The least a fetch reader costs: raw fetch, eventsource-parser, JSON.parse per event. */
const readRaw: Reader = async (url, model, prompt) => {
  const res = await fetch(`${url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer bench' },
    body: chatBody(model, prompt),
  });
  const counter = contentCounter();
  const decoder = new TextDecoder();
  const reader = res.body!.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return counter.count();
    counter.feed(decoder.decode(value, { stream: true }));
  }
};

/** The least a node:http reader costs: what streamChat reads through, with nothing of its own around it. */
const httpAgent = new http.Agent({ keepAlive: true });
const readHttp: Reader = (url, model, prompt) =>
  new Promise((resolve, reject) => {
    const body = chatBody(model, prompt);
    const headers = { 'content-type': 'application/json', authorization: 'Bearer bench', 'content-length': String(Buffer.byteLength(body)) };
    const req = http.request(`${url}/chat/completions`, { method: 'POST', headers, agent: httpAgent }, (res) => {
      const counter = contentCounter();
      res.setEncoding('utf8');
      res.on('data', counter.feed);
      res.on('end', () => resolve(counter.count()));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });

/** The SDK's own iterator, for reference. */
function sdkReader(url: string): Reader {
  const client = new OpenAI({ baseURL: url, apiKey: 'bench', maxRetries: 0, organization: null, project: null });
  return async (_url, model, prompt) => {
    const stream = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: prompt }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let n = 0;
    for await (const chunk of stream) if (chunk.choices[0]?.delta?.content) n++;
    return n;
  };
}

/** (b) What the studio runs, here on this thread or (`thread`) on the studio's reader thread. */
type StreamFn = (params: StreamChatParams, onDelta: (delta: LlmDelta) => void) => Promise<LlmResult>;
const clientReader =
  (stream: StreamFn): Reader =>
  async (url, model, prompt) => {
    let n = 0;
    await stream({ provider: { api_url: url, api_key: 'bench', model_name: model, timeout_s: 60 }, messages: [{ role: 'user', content: prompt }] }, (delta) => {
      if (delta.kind === 'text') n++;
    });
    return n;
  };

async function measure(read: Reader, url: string, o: Required<LlmClientBenchOptions>, tag: string) {
  const model = `fake-model?tokens=${o.tokens}&tps=${o.tps}&ttft=0`;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const counts = await Promise.all(Array.from({ length: o.streams }, (_, i) => read(url, model, `${tag} ${i}`)));
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const tokens = counts.reduce((a, b) => a + b, 0);
  if (tokens !== o.streams * o.tokens) throw new Error(`${tag}: read ${tokens} tokens, expected ${o.streams * o.tokens}`);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return { tokens, cpu_ms: round(cpuMs), wall_ms: round(wall), cpu_ms_per_1k_tokens: round((cpuMs / tokens) * 1000, 3), tokens_per_cpu_s: Math.round(tokens / (cpuMs / 1000)) };
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

export async function runLlmClientBench(options: LlmClientBenchOptions = {}): Promise<LlmClientBenchResult> {
  const o = { streams: options.streams ?? 50, tokens: options.tokens ?? 600, tps: options.tps ?? 250, rounds: options.rounds ?? 3 };
  const { url, child } = await startUpstream();
  const thread = new LlmStreamThread();
  try {
    const variants: [LlmClientBenchRow['variant'], string, Reader][] = [
      ['raw', 'fetch + eventsource-parser', readRaw],
      ['http', 'node:http + eventsource-parser', readHttp],
      ['sdk', 'openai SDK stream iterator', sdkReader(url)],
      ['client', 'streamChat (node:http)', clientReader(streamChat)],
      ['thread', 'streamChat on the reader thread', clientReader((params, onDelta) => thread.streamChat(params, onDelta))],
    ];
    // paced: tokens trickle in one per network read, as from a real model.
    // burst: the upstream writes as fast as it can, many events per read (a buffering proxy, a replay).
    const scenarios: [Scenario, number][] = [
      ['paced', o.tps],
      ['burst', 1_000_000],
    ];
    // Warm-up: JIT, connection pool, and streamChat's lazy pieces, so measured passes are steady.
    const warm = { ...o, streams: Math.min(o.streams, 10), tokens: Math.min(o.tokens, 200), tps: 5000 };
    for (const [variant, , read] of variants) await measure(read, url, warm, `warm ${variant}`);
    const rows: LlmClientBenchRow[] = [];
    for (const [scenario, tps] of scenarios) {
      const samples = new Map<string, Awaited<ReturnType<typeof measure>>[]>();
      for (let round = 0; round < o.rounds; round++) {
        // Rotate the order each round so no variant always runs first (or right after a GC).
        for (let i = 0; i < variants.length; i++) {
          const [variant, , read] = variants[(i + round) % variants.length];
          const m = await measure(read, url, { ...o, tps }, `${scenario} ${variant} ${round}`);
          samples.set(variant, [...(samples.get(variant) ?? []), m]);
        }
      }
      for (const [variant, label] of variants) {
        const list = samples.get(variant)!.sort((a, b) => a.cpu_ms - b.cpu_ms);
        rows.push({ scenario, variant, label, ...list[list.length >> 1] });
      }
    }
    const per = (sc: Scenario, v: string) => rows.find((r) => r.scenario === sc && r.variant === v)!.cpu_ms_per_1k_tokens;
    const ratio = (sc: Scenario) => ({
      client_over_raw: round(per(sc, 'client') / per(sc, 'raw'), 2),
      client_over_http: round(per(sc, 'client') / per(sc, 'http'), 2),
      sdk_over_client: round(per(sc, 'sdk') / per(sc, 'client'), 2),
      thread_over_client: round(per(sc, 'thread') / per(sc, 'client'), 2),
    });
    const ratios = { paced: ratio('paced'), burst: ratio('burst') };
    const cheapest = (sc: Scenario) => rows.filter((r) => r.scenario === sc).sort((a, b) => a.cpu_ms_per_1k_tokens - b.cpu_ms_per_1k_tokens)[0].label;
    return {
      options: o,
      rows,
      ratios,
      note:
        `Cheapest: ${cheapest('paced')} (paced), ${cheapest('burst')} (burst). ` +
        `streamChat costs ${ratios.paced.client_over_raw}× / ${ratios.burst.client_over_raw}× the raw fetch reader per token (paced / burst), ` +
        `and ${ratios.paced.client_over_http}× / ${ratios.burst.client_over_http}× the bare node:http reader it is built on; ` +
        `the SDK's iterator costs ${ratios.paced.sdk_over_client}× / ${ratios.burst.sdk_over_client}× streamChat, and streamChat on the reader thread ${ratios.paced.thread_over_client}× / ${ratios.burst.thread_over_client}×. ` +
        `Paced, most of the cost is per network read: fetch's for raw and sdk, node:http's for streamChat; in bursts the cost per event dominates, and the SDK's SSE decoding with it.`,
    };
  } finally {
    await thread.close();
    child.kill('SIGTERM');
  }
}

export function printTable(r: LlmClientBenchResult): void {
  const { streams, tokens, tps, rounds } = r.options;
  console.log(
    `LLM client CPU: ${streams} concurrent streams × ${tokens} tokens; paced = ${tps} tokens/s per stream, burst = unpaced;\n` +
      `median of ${rounds} interleaved rounds; the upstream runs in a child process, so only the client is counted.\n`,
  );
  const head = ['scenario', 'variant', 'tokens', 'CPU ms', 'wall ms', 'CPU ms / 1k tokens', 'tokens / CPU-s'];
  const body = r.rows.map((x) => [x.scenario, x.label, String(x.tokens), String(x.cpu_ms), String(x.wall_ms), String(x.cpu_ms_per_1k_tokens), String(x.tokens_per_cpu_s)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of body) console.log(line(row));
  console.log(`\n${r.note}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { streams: { type: 'string' }, tokens: { type: 'string' }, tps: { type: 'string' }, rounds: { type: 'string' } } });
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const result = await runLlmClientBench({ streams: num(values.streams), tokens: num(values.tokens), tps: num(values.tps), rounds: num(values.rounds) });
  printTable(result);
}
