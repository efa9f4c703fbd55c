/**
 * The functions that took the most CPU in a V8 profile (`node --cpu-prof`, e.g. the relay bench with
 * BENCH_CPU_PROF=<dir>), by self time: the short list a performance change is judged by.
 *
 *   node --import tsx bench/profile-top.ts <file.cpuprofile> [--top 10] [--inclusive | --by-package]
 *
 * `--by-package` sums self time by where the code lives (an npm package, a folder of ours, Node's own
 * `node:` modules, V8's garbage collector): which layer a cost belongs to.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const nameOf = ({ callFrame: { functionName, url, lineNumber } }: ProfileNode) => {
  const where = url ? `${url.replace(/^file:\/\//, '').split('/node_modules/').at(-1)!.replace(/^.*\/(apps|packages|tools)\//, '$1/')}:${lineNumber + 1}` : '';
  return `${functionName || '(anonymous)'} ${where}`.trim();
};

/** The layer a function belongs to: its npm package, our app's folder (`server/runs`), `node:` or V8's own. */
const packageOf = ({ callFrame: { functionName, url } }: ProfileNode) => {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node:';
  const inModules = url.split('/node_modules/').at(-1)!;
  if (inModules !== url) return inModules.startsWith('@') ? inModules.split('/').slice(0, 2).join('/') : inModules.split('/')[0];
  return url.match(/\/(apps|packages|tools)\/([^/]+)\/src\/([^/]+)\//)?.slice(2).join('/') ?? url;
};

/**
 * By self time, or with `inclusive` by the time spent in a function and everything it called (each
 * sample counted once per function on its stack): where a request's cost goes, not just its leaves.
 */
export function topFunctions(profile: Profile, top = 10, inclusive = false, byPackage = false) {
  const keyOf = byPackage ? packageOf : nameOf;
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id);
  const selfUs = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const node = byNode.get(id)!;
    if (node.callFrame.functionName === '(idle)') return;
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const keys = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = inclusive ? parent.get(at) : undefined) {
      keys.add(keyOf(byNode.get(at)!));
    }
    for (const key of keys) selfUs.set(key, (selfUs.get(key) ?? 0) + dt);
  });
  const kind = inclusive ? 'inclusive' : 'self';
  const label = byPackage ? 'where' : 'function';
  return {
    busyMs: total / 1000,
    rows: [...selfUs.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([fn, us]) => ({ [label]: fn, [`${kind} ms`]: Math.round(us / 1000), [`${kind} %`]: ((us / total) * 100).toFixed(1) })),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string' }, inclusive: { type: 'boolean' }, 'by-package': { type: 'boolean' } },
  });
  for (const file of positionals) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    const { busyMs, rows } = topFunctions(profile, Number(values.top ?? 10), values.inclusive, values['by-package']);
    console.log(`${path.basename(file)}: ${Math.round(busyMs)} ms busy (idle left out)`);
    console.table(rows);
  }
}
