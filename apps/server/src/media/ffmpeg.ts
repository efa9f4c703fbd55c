/**
 * Running ffmpeg and ffprobe (DESIGN §9 "System tools"): argument arrays only (never a shell string),
 * every run time-bounded and killed with SIGKILL on cancel, timeout or shutdown, the tail of stderr kept
 * for the error message, and outputs written to a temporary name then renamed so that no reader ever
 * sees a half-written file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';

export interface MediaTools {
  ffmpeg: string;
  ffprobe: string;
}

export interface MediaToolsEnv {
  FFMPEG_PATH?: string;
  FFPROBE_PATH?: string;
  /** Searched when a tool's path is not given; the usual system directories when absent. */
  PATH?: string;
}

const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';
const DEFAULT_TIMEOUT_MS = 15 * 60_000;
const PROBE_TIMEOUT_MS = 60_000;
const STDERR_TAIL_LINES = 20;
/** Enough for 20 long lines; older output is dropped so a chatty run cannot grow memory. */
const STDERR_KEEP_CHARS = 16_384;

function isExecutable(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string, searchPath: string): string | null {
  for (const dir of searchPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

/**
 * The ffmpeg and ffprobe to use, or null when either is missing (the caller tells the user to
 * `apt-get install -y ffmpeg`). A given path that does not exist counts as missing: falling back to
 * another binary would hide a typo in the configuration.
 */
export function findMediaTools(env: MediaToolsEnv): MediaTools | null {
  const searchPath = env.PATH ?? DEFAULT_PATH;
  const ffmpeg = env.FFMPEG_PATH ? (isExecutable(env.FFMPEG_PATH) ? env.FFMPEG_PATH : null) : onPath('ffmpeg', searchPath);
  if (!ffmpeg) return null;
  // ffprobe ships beside ffmpeg; look there first so a custom FFMPEG_PATH gets its own ffprobe.
  const ffprobe = env.FFPROBE_PATH
    ? isExecutable(env.FFPROBE_PATH)
      ? env.FFPROBE_PATH
      : null
    : (onPath('ffprobe', path.dirname(ffmpeg)) ?? onPath('ffprobe', searchPath));
  return ffprobe ? { ffmpeg, ffprobe } : null;
}

export class FfmpegError extends Error {
  override name = 'FfmpegError';
  constructor(
    message: string,
    /** The last lines ffmpeg wrote to stderr (the reason is usually there). */
    readonly stderr: string,
    readonly exitCode: number | null = null,
  ) {
    super(stderr ? `${message}\n${stderr}` : message);
  }
}

/** Same `name` as the platform's abort errors, so callers test `err.name === 'AbortError'` only. */
export class MediaAbortError extends Error {
  override name = 'AbortError';
  constructor(message = 'The media task was aborted', options?: { cause?: unknown }) {
    super(message, options);
  }
}

const liveChildren = new Set<ChildProcess>();
let ffmpegRuns = 0;

/** SIGKILLs every ffmpeg/ffprobe still running (server shutdown); returns how many there were. */
export function killAllMediaProcesses(): number {
  const count = liveChildren.size;
  for (const child of liveChildren) child.kill('SIGKILL');
  return count;
}

/** How many times ffmpeg has been started by this process: lets caches prove they did not re-render. */
export function ffmpegInvocationCount(): number {
  return ffmpegRuns;
}

/** How many media processes are running now. */
export function liveMediaProcessCount(): number {
  return liveChildren.size;
}

class StderrTail {
  private text = '';
  push(chunk: string): void {
    this.text += chunk;
    if (this.text.length > STDERR_KEEP_CHARS * 2) this.text = this.text.slice(-STDERR_KEEP_CHARS);
  }
  lines(): string {
    return this.text.replace(/\r/g, '\n').split('\n').filter((l) => l.trim() !== '').slice(-STDERR_TAIL_LINES).join('\n');
  }
}

interface SpawnOptions {
  signal?: AbortSignal;
  timeoutMs: number;
  onStdout?: (chunk: string) => void;
  /** Keeps stdout (ffprobe's JSON) up to this many characters. */
  collectStdout?: number;
}

function spawnBounded(command: string, args: string[], label: string, opts: SpawnOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(new MediaAbortError(`${label} aborted before it started`, { cause: opts.signal.reason }));
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    liveChildren.add(child);
    const tail = new StderrTail();
    let stdout = '';
    let failure: Error | null = null;
    const kill = (error: Error) => {
      failure ??= error;
      child.kill('SIGKILL');
    };
    const onAbort = () => kill(new MediaAbortError(`${label} aborted`, { cause: opts.signal?.reason }));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => kill(new FfmpegError(`${label} timed out after ${opts.timeoutMs} ms`, '')), opts.timeoutMs);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      if (opts.collectStdout !== undefined) {
        stdout += chunk;
        if (stdout.length > opts.collectStdout) kill(new FfmpegError(`${label} wrote more than ${opts.collectStdout} characters`, ''));
      }
      opts.onStdout?.(chunk);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => tail.push(chunk));
    child.on('error', (err) => (failure ??= new FfmpegError(`${label} could not start (${command}): ${err.message}`, '')));
    // 'close', not 'exit': the pipes are drained and the process is gone, so a caller that deletes
    // the output next cannot race a process still writing it.
    child.on('close', (code, signal) => {
      liveChildren.delete(child);
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (failure instanceof FfmpegError && !failure.stderr) failure = new FfmpegError(failure.message, tail.lines(), code);
      if (failure) return reject(failure);
      if (code === 0) return resolve(stdout);
      reject(new FfmpegError(`${label} failed (${signal ? `signal ${signal}` : `exit code ${code}`})`, tail.lines(), code));
    });
  });
}

export interface RunFfmpegOptions {
  signal?: AbortSignal;
  /** Killed after this long; 15 minutes by default. */
  timeoutMs?: number;
  /** The output's expected duration: progress is reported as a fraction of it. */
  durationS?: number;
  /** Called with increasing fractions in [0, 1]; 1 once the run has finished. */
  onProgress?: (fraction: number) => void;
}

/** Runs ffmpeg with `args` (inputs, filters, outputs) and resolves when it exits successfully. */
export async function runFfmpeg(tools: MediaTools, args: string[], opts: RunFfmpegOptions = {}): Promise<void> {
  // -progress pipe:1 gives machine-readable key=value blocks on stdout, every 0.1 s (the default 0.5 s
  // left a short clip's render with no step between 0 and done); -nostats keeps stderr for warnings
  // and errors only, so its tail is the reason for a failure.
  const fullArgs = ['-hide_banner', '-nostdin', '-y', '-loglevel', 'warning', '-progress', 'pipe:1', '-stats_period', '0.1', '-nostats', ...args];
  let reported = 0;
  const report = (fraction: number) => {
    const clamped = Math.min(1, Math.max(0, fraction));
    if (clamped > reported) {
      reported = clamped;
      opts.onProgress?.(clamped);
    }
  };
  let pending = '';
  const onStdout = (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      // ffmpeg 5.1 prints out_time_ms in microseconds too (a long-standing naming bug), so both keys
      // are read the same way; "N/A" appears before the first frame.
      const m = /^out_time_(?:us|ms)=(\d+)/.exec(line);
      if (m && opts.durationS && opts.durationS > 0) report(Number(m[1]) / 1e6 / opts.durationS);
    }
  };
  ffmpegRuns++;
  await spawnBounded(tools.ffmpeg, fullArgs, 'ffmpeg', {
    signal: opts.signal,
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    onStdout: opts.onProgress ? onStdout : undefined,
  });
  report(1);
}

export interface ProbedStream {
  codec_type: string;
  codec_name: string;
  width?: number;
  height?: number;
  fps?: number;
  duration_s?: number;
  sample_rate?: number;
}

export interface ProbeResult {
  duration_s: number;
  format_tags: Record<string, string>;
  streams: ProbedStream[];
}

function rate(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const [num, den] = value.split('/').map(Number);
  if (!num || !den) return undefined;
  return num / den;
}

function positiveNumber(value: unknown): number | undefined {
  const n = typeof value === 'string' || typeof value === 'number' ? Number(value) : NaN;
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/** Container and stream facts from ffprobe. */
export async function probe(tools: MediaTools, file: string, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<ProbeResult> {
  const json = await spawnBounded(tools.ffprobe, ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', file], 'ffprobe', {
    signal: opts.signal,
    timeoutMs: opts.timeoutMs ?? PROBE_TIMEOUT_MS,
    collectStdout: 8_000_000,
  });
  type Raw = { format?: { duration?: string; tags?: Record<string, string> }; streams?: Record<string, unknown>[] };
  const raw = JSON.parse(json) as Raw;
  const streams = (raw.streams ?? []).map((s): ProbedStream => {
    const stream: ProbedStream = { codec_type: String(s.codec_type ?? ''), codec_name: String(s.codec_name ?? '') };
    if (typeof s.width === 'number') stream.width = s.width;
    if (typeof s.height === 'number') stream.height = s.height;
    // avg_frame_rate is 0/0 for some still images; r_frame_rate is the container's nominal rate.
    const fps = rate(s.avg_frame_rate) ?? rate(s.r_frame_rate);
    if (stream.codec_type === 'video' && fps) stream.fps = fps;
    const duration = positiveNumber(s.duration);
    if (duration) stream.duration_s = duration;
    const sampleRate = positiveNumber(s.sample_rate);
    if (sampleRate) stream.sample_rate = sampleRate;
    return stream;
  });
  return { duration_s: positiveNumber(raw.format?.duration) ?? 0, format_tags: { ...(raw.format?.tags ?? {}) }, streams };
}

/**
 * Renders into `out + '.part-<random>'` beside `out`, then renames it into place (atomic on one file
 * system). On failure or abort the temporary file is deleted, so `out` is either complete or absent.
 * ffmpeg cannot guess the muxer from such a name: pass `-f <format>` for the output.
 */
export async function renderToFile<T>(out: string, render: (tmp: string) => Promise<T>): Promise<T> {
  await mkdir(path.dirname(out), { recursive: true });
  const tmp = `${out}.part-${randomBytes(6).toString('hex')}`;
  try {
    const result = await render(tmp);
    const written = await stat(tmp).catch(() => null);
    if (!written?.isFile()) throw new Error(`the render finished without writing ${path.basename(tmp)}`);
    await rename(tmp, out);
    return result;
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
