/**
 * One way to run ffmpeg/ffprobe for the export: argument arrays (never a shell), a time bound, SIGKILL
 * on abort or timeout (ffmpeg ignores a polite SIGTERM while it flushes a muxer), the tail of stderr kept
 * for the error message, and `-progress pipe:1` parsed into seconds of output written.
 * Every live child is in a registry so tests (and shutdown) can see that nothing is left behind.
 */
import { spawn } from 'node:child_process';

export interface FfmpegPaths {
  ffmpeg: string;
  ffprobe: string;
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Hard bound; the child is killed when it is reached. */
  timeoutMs: number;
  /** Seconds of output written so far (from `-progress pipe:1`: `out_time_us`). */
  onOutTime?: (seconds: number) => void;
  cwd?: string;
  /** Collect stdout (ffprobe JSON); otherwise stdout is read only for progress lines. */
  captureStdout?: boolean;
}

export interface RunResult {
  stdout: string;
  stderrTail: string;
}

export class MediaToolError extends Error {
  constructor(
    message: string,
    readonly code: 'failed' | 'timeout' | 'aborted',
    readonly stderrTail = '',
  ) {
    super(message);
    this.name = code === 'aborted' ? 'AbortError' : 'MediaToolError';
  }
}

const STDERR_TAIL_BYTES = 4_000;
const live = new Map<number, string>();
let invocations = 0;

/** Pids of media-tool children this process started that have not exited yet. */
export function liveChildPids(): number[] {
  return [...live.keys()];
}

/** How many ffmpeg/ffprobe processes were started since the process began (tests count re-renders). */
export function invocationCount(): number {
  return invocations;
}

export function runMediaTool(bin: string, args: string[], opts: RunOptions): Promise<RunResult> {
  if (opts.signal?.aborted) return Promise.reject(new MediaToolError(`${bin} not started: aborted`, 'aborted'));
  invocations++;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderrTail = '';
    let lineBuffer = '';
    let ended: MediaToolError | null = null;

    const kill = (why: MediaToolError) => {
      if (ended) return;
      ended = why;
      child.kill('SIGKILL');
    };
    const onAbort = () => kill(new MediaToolError(`${bin} aborted`, 'aborted'));
    const timer = setTimeout(
      () => kill(new MediaToolError(`${bin} took longer than ${opts.timeoutMs} ms`, 'timeout')),
      opts.timeoutMs,
    );
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (child.pid) live.set(child.pid, bin);

    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      if (opts.captureStdout) stdout += chunk;
      if (!opts.onOutTime) return;
      lineBuffer += chunk;
      const lines = lineBuffer.split('\n');
      lineBuffer = lines.pop() ?? '';
      for (const line of lines) {
        // ffmpeg 5.1 writes out_time_us and (mislabelled, also microseconds) out_time_ms.
        const m = /^out_time_us=(\d+)/.exec(line);
        if (m) opts.onOutTime(Number(m[1]) / 1e6);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
    });

    const finish = () => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (child.pid) live.delete(child.pid);
    };
    child.on('error', (err) => {
      finish();
      reject(new MediaToolError(`${bin} could not start: ${err.message}`, 'failed'));
    });
    // 'close' (not 'exit'): the process is gone and its pipes are drained.
    child.on('close', (code, sig) => {
      finish();
      if (ended) return reject(Object.assign(ended, { stderrTail }));
      if (code === 0) return resolve({ stdout, stderrTail });
      reject(new MediaToolError(`${bin} exited with ${code ?? sig}: ${lastLines(stderrTail, 3)}`, 'failed', stderrTail));
    });
  });
}

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join(' | ');
}

export interface ProbeResult {
  duration_s: number;
  streams: { codec_type: string; codec_name: string; width?: number; height?: number; r_frame_rate?: string; duration?: string; nb_frames?: string }[];
  tags: Record<string, string>;
}

export async function probe(ffprobe: string, file: string, signal?: AbortSignal): Promise<ProbeResult> {
  const { stdout } = await runMediaTool(
    ffprobe,
    ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', file],
    { signal, timeoutMs: 30_000, captureStdout: true },
  );
  const json = JSON.parse(stdout) as { format: { duration?: string; tags?: Record<string, string> }; streams: ProbeResult['streams'] };
  return { duration_s: Number(json.format.duration ?? 0), streams: json.streams, tags: json.format.tags ?? {} };
}
