import { spawn } from 'node:child_process';

export interface RunToolOptions {
  /** Written to the child's stdin, then stdin is closed. */
  input?: string | Buffer;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Runs ffmpeg / espeak-ng with an argument array (never a shell string) and collects stdout.
 * Time-bounded and killed with SIGKILL on abort; the stderr tail goes into the error message.
 */
export function runTool(command: string, args: string[], options: RunToolOptions = {}): Promise<Buffer> {
  const { input, timeoutMs = 60_000, signal } = options;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Error(`${command} not started: aborted`));
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    let killedFor: string | undefined;
    const kill = (why: string) => {
      killedFor = why;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => kill(`timed out after ${timeoutMs} ms`), timeoutMs);
    const onAbort = () => kill('aborted');
    signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      // Only the tail is useful in an error message; keep memory bounded on chatty tools.
      stderr = (stderr + chunk.toString('utf8')).slice(-4000);
    });
    child.stdin.on('error', () => {}); // EPIPE when the tool exits before reading everything
    child.stdin.end(input);
    child.on('error', (err) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (code === 0 && !killedFor) return resolve(Buffer.concat(out));
      const tail = stderr.trim().split('\n').slice(-5).join('\n');
      reject(new Error(`${command} ${killedFor ?? `exited with ${code}`}: ${tail}`));
    });
  });
}
