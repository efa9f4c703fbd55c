/**
 * The functions that took the most CPU in a V8 profile (`node --cpu-prof`, e.g. the relay bench with
 * BENCH_CPU_PROF=<dir>), by self time: the short list a performance change is judged by.
 *
 *   node --import tsx bench/profile-top.ts <file.cpuprofile> [--top 10]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export function topFunctions(profile: Profile, top = 10) {
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const node = byNode.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') return;
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const where = url ? `${url.replace(/^file:\/\//, '').split('/node_modules/').at(-1)!.replace(/^.*\/(apps|packages|tools)\//, '$1/')}:${lineNumber + 1}` : '';
    const key = `${functionName || '(anonymous)'} ${where}`.trim();
    selfUs.set(key, (selfUs.get(key) ?? 0) + dt);
  });
  return {
    busyMs: total / 1000,
    rows: [...selfUs.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([fn, us]) => ({ function: fn, 'self ms': Math.round(us / 1000), 'self %': ((us / total) * 100).toFixed(1) })),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' } } });
  for (const file of positionals) {
    const { busyMs, rows } = topFunctions(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(values.top ?? 10));
    console.log(`${path.basename(file)}: ${Math.round(busyMs)} ms busy (idle left out)`);
    console.table(rows);
  }
}
