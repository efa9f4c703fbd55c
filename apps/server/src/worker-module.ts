import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * The server runs either from its TypeScript source (tests, `npm run dev`: through tsx or vitest) or
 * from its build (`npm start`, the Docker image: apps/server/dist, see build.mjs). A worker thread or
 * process starts with a bare loader, so from source it must load tsx before its module; built, its
 * module is plain JavaScript beside the bundle that starts it.
 */
const FROM_SOURCE = import.meta.url.endsWith('.ts');

/**
 * How to start the worker module `name` (`pglite-worker`), which sits beside `callerUrl` in the source
 * and beside the bundle once built: its URL, the `execArgv` a pooled worker needs, the code for
 * `new Worker(code, { eval: true })` and the arguments for running it as a process.
 */
export function workerModule(name: string, callerUrl: string) {
  const url = new URL(`./${name}${FROM_SOURCE ? '.ts' : '.js'}`, callerUrl);
  if (!FROM_SOURCE) return { url, execArgv: [], boot: `import(${JSON.stringify(url.href)})`, processArgs: [fileURLToPath(url)] };
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  return {
    url,
    execArgv: ['--import', tsx],
    // `--import tsx` in a worker's execArgv comes too late for its entry module: register, then import.
    boot: `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); })`,
    processArgs: ['--import', tsx, fileURLToPath(url)],
  };
}
