import { spawn } from 'node:child_process';

/**
 * The narration modules' process runner: argument arrays only (never a shell), a time bound, SIGKILL
 * on abort, and the tail of stderr kept for the error message. Deliberately small and private to
 * this folder so that a shared media runner can replace it without touching callers' semantics.
 */
export interface RunOptions {
  signal?: AbortSignal;
  /** Wall-clock bound; the process is killed when it is exceeded. */
  timeoutMs?: number;
  /** Written to the process's stdin, which is then closed. */
  input?: string | Buffer;
}

export interface RunResult {
  stdout: Buffer;
  stderr: string;
}

/** Tools used here, by name on PATH unless the caller (who read FFMPEG_PATH etc. from config) says otherwise. */
export interface MediaTools {
  ffmpeg: string;
  ffprobe: string;
  espeak: string;
}

export const defaultTools: MediaTools = { ffmpeg: 'ffmpeg', ffprobe: 'ffprobe', espeak: 'espeak-ng' };

export class ProcessError extends Error {
  constructor(
    message: string,
    readonly reason: 'exit' | 'timeout' | 'aborted' | 'spawn',
    readonly stderrTail: string,
    readonly exitCode: number | null = null,
  ) {
    super(message);
  }
}

/** Enough of stderr to explain a failure without holding megabytes of ffmpeg progress lines. */
const STDERR_KEEP = 64 * 1024;
const DEFAULT_TIMEOUT_MS = 120_000;

export function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const { signal, timeoutMs = DEFAULT_TIMEOUT_MS, input } = options;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new ProcessError(`${cmd} was cancelled before it started`, 'aborted', ''));
      return;
    }
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    let ended: 'timeout' | 'aborted' | null = null;
    const kill = (why: 'timeout' | 'aborted') => {
      ended ??= why;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => kill('timeout'), timeoutMs);
    const onAbort = () => kill('aborted');
    signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };

    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString('utf8');
      if (err.length > STDERR_KEEP * 2) err = err.slice(-STDERR_KEEP);
    });
    // A process that exits before reading all of stdin gives EPIPE; its exit code tells the story.
    child.stdin.on('error', () => {});
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();

    child.on('error', (e) => {
      cleanup();
      reject(new ProcessError(`${cmd} could not be started: ${e.message}`, 'spawn', ''));
    });
    child.on('close', (code) => {
      cleanup();
      const tail = err.slice(-2000).trim();
      if (ended === 'aborted') reject(new ProcessError(`${cmd} was cancelled`, 'aborted', tail));
      else if (ended === 'timeout') reject(new ProcessError(`${cmd} took longer than ${timeoutMs} ms and was stopped`, 'timeout', tail));
      else if (code !== 0) reject(new ProcessError(`${cmd} exited with code ${code}: ${lastLines(tail, 3)}`, 'exit', tail, code));
      else resolve({ stdout: Buffer.concat(out), stderr: err });
    });
  });
}

function lastLines(text: string, n: number): string {
  return text.split('\n').slice(-n).join(' | ');
}
