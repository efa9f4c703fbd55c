/**
 * Final export cost at full size: a 60 s 1080×1920 story of 8 shots (pre-rendered clips, made here
 * first and not timed), espeak-ng narration per shot, looped music ducked under it, burned CJK
 * subtitles, the AIGC label, fade transitions. Reports wall time, the Node process's peak RSS and the
 * peak RSS (VmHWM) of each ffmpeg child, read from /proc while it runs, and ffmpeg's CPU seconds.
 * `--cache` exports through the per-shot segment cache (first export: every segment rendered).
 * Targets: < 90 s and < 1 GB on a 2-core machine.
 *
 *   node --import tsx bench/export.bench.ts [--keep] [--cache]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { composeVideo, shotTimeline, type ComposeSpec } from '../apps/server/src/export/compose.ts';
import { liveChildPids, probe } from '../apps/server/src/export/ffmpeg-process.ts';
import { makeClip, makeTone, tools, writeAss } from '../apps/server/src/export/test-media.ts';

const W = 1080;
const H = 1920;
const FPS = 30;
const SHOTS = 8;
const SHOT_S = 60 / SHOTS + 0.5 * (SHOTS - 1) / SHOTS; // so that the transitioned total is 60 s
const LINES = ['很久以前，山里住着一位老木匠。', '他每天清晨上山砍柴。', '有一天，他遇见了一只受伤的小鹿。', '老木匠把小鹿抱回了家。', '小鹿渐渐好了起来。', '春天来了，小鹿要回到森林。', '老木匠站在门口送别。', '从此，山里多了一个朋友。'];

function vmHwmKb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0; // exited between listing and reading
  }
}

/** CPU seconds of this process's reaped children (ffmpeg): utime + stime of /proc/self/stat, fields 16-17. */
function childCpuSeconds(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  // fields[0] is field 3 (state); cutime and cstime are fields 16 and 17, in clock ticks (100 Hz on Linux).
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

function speak(file: string, text: string, seconds: number): string {
  const r = spawnSync('espeak-ng', ['-v', 'cmn', '-s', '170', '-w', file, text], { timeout: 30_000 });
  // Without espeak-ng the bench still measures the pipeline, with a tone as the voice.
  if (r.status !== 0) makeTone(file, { hz: 300, seconds: seconds - 1 });
  return file;
}

export async function runExportBench(keep = false, cache = false) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'export-bench-'));
  try {
    console.log(`preparing ${SHOTS} clips of ${SHOT_S.toFixed(3)} s in ${dir} …`);
    const shots: ComposeSpec['shots'] = [];
    for (let i = 0; i < SHOTS; i++) {
      // Half the clips at the output size, half smaller (scaled up), as image-to-video vendors return.
      const size = i % 2 === 0 ? { width: W, height: H } : { width: 720, height: 1280 };
      const clip = makeClip(path.join(dir, `clip-${i}.mp4`), { ...size, fps: i % 3 === 0 ? 24 : 30, seconds: SHOT_S });
      shots.push({ clip, duration_s: SHOT_S, narration: speak(path.join(dir, `voice-${i}.wav`), LINES[i], SHOT_S) });
    }
    const music = makeTone(path.join(dir, 'music.wav'), { hz: 196, seconds: 20, volume: 0.6 });
    const line = shotTimeline({ shots, transition: { kind: 'fade', duration_s: 0.5 }, fps: FPS });
    const ass = writeAss(path.join(dir, 'subs.ass'), {
      width: W,
      height: H,
      lines: LINES.map((text, i) => ({ text, start_s: line.starts_s[i] + 0.3, end_s: line.starts_s[i] + SHOT_S - 0.8 })),
    });
    const spec: ComposeSpec = {
      out: path.join(dir, 'story.mp4'),
      width: W,
      height: H,
      fps: FPS,
      shots,
      transition: { kind: 'fade', duration_s: 0.5 },
      subtitles: { assFile: ass, mode: 'burn' },
      music: { file: music, volume: 0.35, duck: true },
      label: { text: 'AI 生成', visible: true },
      cacheDir: cache ? path.join(dir, 'segments') : undefined,
    };

    const childPeakKb = new Map<number, number>();
    const poll = setInterval(() => {
      for (const pid of liveChildPids()) childPeakKb.set(pid, Math.max(childPeakKb.get(pid) ?? 0, vmHwmKb(pid)));
    }, 100);
    const steps: { step: string; at_ms: number }[] = [];
    const cpu0 = childCpuSeconds();
    const t0 = performance.now();
    const result = await composeVideo(tools, spec, {
      onProgress: (p) => {
        if (steps.at(-1)?.step !== p.step) steps.push({ step: p.step, at_ms: Math.round(performance.now() - t0) });
      },
    });
    const wallMs = performance.now() - t0;
    clearInterval(poll);
    const info = await probe(tools.ffprobe, spec.out);
    const peaks = [...childPeakKb.values()];
    const report = {
      output: { duration_s: info.duration_s, expected_s: line.total_s, bytes: Number(spawnSync('stat', ['-c', '%s', spec.out], { encoding: 'utf8' }).stdout) },
      wall_s: +(wallMs / 1000).toFixed(1),
      // Wall time depends on what else the machine runs; ffmpeg CPU seconds do not.
      ffmpeg_cpu_s: +(childCpuSeconds() - cpu0).toFixed(1),
      load_average: os.loadavg().map((l) => +l.toFixed(1)),
      steps,
      ffmpeg_runs: result.ffmpeg_runs,
      node_peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      ffmpeg_peak_rss_mb_max: Math.round(Math.max(...peaks) / 1024),
      ffmpeg_peak_rss_mb_each: peaks.map((kb) => Math.round(kb / 1024)),
      targets: { wall_s: 90, peak_rss_mb: 1024 },
    };
    console.log(JSON.stringify(report, null, 2));
    return report;
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { keep: { type: 'boolean', default: false }, cache: { type: 'boolean', default: false } } });
  await runExportBench(values.keep, values.cache);
}
