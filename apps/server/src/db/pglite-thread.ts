/**
 * The embedded database on a thread of its own (issue 17). PGlite runs PostgreSQL as WebAssembly and
 * executes each statement synchronously: on the studio's thread every statement stopped every stream
 * for its duration. Here it runs in a worker (pglite-worker.ts), and the studio speaks the PostgreSQL
 * wire protocol to it with the same postgres.js client as in PostgreSQL mode: one driver, one code
 * path, statements prepared and pipelined the same way.
 *
 * The bytes travel over an in-process MessagePort, not a TCP or Unix socket: nothing else on the
 * machine can connect to a database that has no password. (`@electric-sql/pglite-socket` serves
 * PGlite on such a socket; its 0.2.17 also pins pglite 0.5.14 and seven extensions as peers.)
 */
import { execFile } from 'node:child_process';
import { Duplex } from 'node:stream';
import { promisify } from 'node:util';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { Options } from 'postgres';
import { workerModule } from '../worker-module.ts';
import type { FromWorker, ToWorker } from './pglite-worker.ts';

const WORKER = workerModule('pglite-worker', import.meta.url);
const YOUNG_GENERATION_MB = 4;

/** Creates a new database in `pgdata` in a process of its own (see pglite-worker.ts for why). */
export async function createPglite(pgdata: string) {
  await promisify(execFile)(process.execPath, [...WORKER.processArgs, pgdata], { timeout: 120_000 });
}

export class PgliteThread {
  private readonly connections = new Set<PortSocket>();
  private exited = false;

  private constructor(private readonly worker: Worker) {
    worker.on('exit', () => {
      this.exited = true;
      // Whatever was in flight fails as a lost connection would, instead of waiting forever.
      for (const c of this.connections) c.destroy(connectionLost());
    });
  }

  /** Opens the database in `pgdata` on a new thread; resolves once it is ready for connections. */
  static async start(pgdata: string): Promise<PgliteThread> {
    // Its JavaScript only passes bytes along (the database's memory is WebAssembly's): a small young
    // generation is plenty, where the default would let the thread's heap grow by tens of MB under load.
    const worker = new Worker(WORKER.boot, { eval: true, workerData: { pgdata }, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', (m: FromWorker) => (m.type === 'ready' ? resolve() : reject(new Error(`The embedded database did not open: ${m.type === 'failed' ? m.message : m.type}`))));
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`The embedded database's thread ended while opening (exit code ${code})`)));
    });
    worker.removeAllListeners('message').removeAllListeners('error');
    worker.on('error', () => {}); // it then exits, which ends its connections
    return new PgliteThread(worker);
  }

  /**
   * postgres.js options for this database: `connections` (one by default) kept for the studio's life
   * (no idle or lifetime end), which take turns on PGlite's one session (pglite-worker.ts). postgres.js
   * takes a `socket` factory its types leave out. `priority`: its statements take the session before
   * what other connections have waiting (never inside another's transaction): for the reads a person waits on.
   */
  clientOptions({ priority = false, connections = 1 } = {}): Options<{}> {
    return { socket: () => this.connect(priority), max: connections, idle_timeout: 0, max_lifetime: 0, user: 'postgres', database: 'postgres' } as Options<{}>;
  }

  /** A new connection to the database, as postgres.js's `socket` option takes it. */
  connect(priority = false): Duplex {
    if (this.exited) throw connectionLost();
    const { port1, port2 } = new MessageChannel();
    this.worker.postMessage({ type: 'connect', port: port2, priority } satisfies ToWorker, [port2]);
    const socket = new PortSocket(port1);
    this.connections.add(socket);
    socket.once('close', () => this.connections.delete(socket));
    return socket;
  }

  /** The thread's JavaScript heap as a V8 heap snapshot (what it keeps, e.g. for a memory test). */
  heapSnapshot() {
    return this.worker.getHeapSnapshot();
  }

  /** Closes the database (PGlite writes what it holds) and ends the thread. */
  async close() {
    if (this.exited) return;
    const closed = new Promise<void>((resolve) => {
      this.worker.on('message', (m: FromWorker) => m.type === 'closed' && resolve());
      this.worker.once('exit', () => resolve());
    });
    this.worker.postMessage({ type: 'close' } satisfies ToWorker);
    await closed;
    await this.worker.terminate();
  }
}

function connectionLost() {
  return Object.assign(new Error("The embedded database's thread ended"), { code: 'ECONNRESET' });
}

/** One connection's end of the MessagePort, shaped like the net.Socket postgres.js expects. */
class PortSocket extends Duplex {
  constructor(private readonly port: MessagePort) {
    super();
    port.on('message', (answer: Uint8Array) => this.push(Buffer.from(answer.buffer, answer.byteOffset, answer.byteLength)));
    port.on('close', () => this.destroy());
  }

  override _read() {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void) {
    // A copy the worker can own: the chunk may be a slice of a buffer postgres.js reuses.
    const bytes = new Uint8Array(chunk);
    this.port.postMessage(bytes, [bytes.buffer]);
    done();
  }

  override _final(done: (error?: Error | null) => void) {
    this.hangUp();
    this.push(null);
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void) {
    this.hangUp();
    done(error);
  }

  private hungUp = false;
  private hangUp() {
    if (this.hungUp) return;
    this.hungUp = true;
    this.port.postMessage(null);
    this.port.close();
  }

  // What postgres.js calls on a net.Socket.
  setKeepAlive() {
    return this;
  }
  setNoDelay() {
    return this;
  }
  get readyState() {
    return this.destroyed ? 'closed' : 'open';
  }
}
