/**
 * The embedded database's own thread (pglite-thread.ts starts it): PGlite executes SQL synchronously in
 * WebAssembly, so here it blocks this thread only. Each connection is a MessagePort carrying the
 * PostgreSQL wire protocol both ways; every complete message that has arrived goes to PGlite in one
 * call, so statements a client pipelines run back to back without a trip through the event loop each.
 *
 * Run as a process (`node pglite-worker.js <pgdata>`; see worker-module.ts), it creates the database and exits:
 * creating one (initdb) grows PGlite's WebAssembly memory by some 100 MB that is never given back,
 * which a process of its own returns to the system when it ends.
 */
import { PGlite } from '@electric-sql/pglite';
import { isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads';

export type ToWorker = { type: 'connect'; port: MessagePort } | { type: 'close' };
export type FromWorker = { type: 'ready' } | { type: 'failed'; message: string } | { type: 'closed' };

const SSL_REQUEST = 80877103;
const CANCEL_REQUEST = 80877102;
const TERMINATE = 0x58; // 'X'
const READY_FOR_QUERY = 0x5a; // 'Z'

const post = (message: FromWorker) => parentPort!.postMessage(message);

/**
 * PostgreSQL's default 128 MB of shared buffers lives inside PGlite's WebAssembly memory, which is
 * touched at start and never given back: 32 MB holds a studio's hot tables several times over, and
 * an open database costs ~100 MB less resident memory.
 */
const START_PARAMS = [...PGlite.defaultStartParams, '-c', 'shared_buffers=32MB'];

if (isMainThread) {
  await (await PGlite.create(process.argv[2], { startParams: START_PARAMS })).close();
  process.exit(0);
}

let pg: PGlite;
try {
  pg = await PGlite.create((workerData as { pgdata: string }).pgdata, { startParams: START_PARAMS });
  post({ type: 'ready' });
} catch (err) {
  post({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}

/** The session's transaction state after the last answer ('I' idle, 'T' in a transaction, 'E' failed one). */
let transactionState = 'I';

parentPort!.on('message', async (message: ToWorker) => {
  if (message.type === 'connect') serve(message.port);
  else {
    await pg.close();
    post({ type: 'closed' });
  }
});

/**
 * One client connection. PGlite has one session whoever connects, so a connection that goes away in
 * the middle of a transaction leaves it rolled back for the next, as a server would.
 */
function serve(port: MessagePort) {
  let buffered: Buffer = Buffer.alloc(0);
  let started = false;
  const reply = (answer: Uint8Array) => {
    if (!answer.length) return;
    // Handed over, not copied: only an array that is all of its buffer (a pooled one would go with it).
    const own = answer.byteOffset === 0 && answer.byteLength === answer.buffer.byteLength ? answer : new Uint8Array(answer);
    port.postMessage(own, [own.buffer as ArrayBuffer]);
  };
  const end = () => {
    port.close();
    if (transactionState !== 'I') execute(simpleQuery('rollback'));
  };
  port.on('message', (chunk: Uint8Array | null) => {
    if (chunk === null) return end();
    buffered = buffered.length ? Buffer.concat([buffered, chunk]) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let at = 0;
    let batchFrom = 0;
    const flushBatch = () => {
      if (at > batchFrom) reply(execute(buffered.subarray(batchFrom, at)));
      batchFrom = at;
    };
    for (;;) {
      const left = buffered.length - at;
      if (!started) {
        // Before the startup message, requests have no type byte: a length, then a code.
        if (left < 8 || left < buffered.readInt32BE(at)) break;
        const length = buffered.readInt32BE(at);
        const code = buffered.readInt32BE(at + 4);
        if (code === SSL_REQUEST) reply(new Uint8Array([0x4e])); // 'N': no TLS in-process
        else if (code !== CANCEL_REQUEST) {
          started = true;
          reply(execute(buffered.subarray(at, at + length)));
        }
        at += length;
        batchFrom = at;
        continue;
      }
      if (left < 5) break;
      const length = 1 + buffered.readInt32BE(at + 1);
      if (left < length) break;
      if (buffered[at] === TERMINATE) {
        // In a batch PGlite would take it for the end of its process: the connection ends here instead.
        flushBatch();
        return end();
      }
      at += length;
    }
    flushBatch();
    buffered = at === buffered.length ? Buffer.alloc(0) : Buffer.from(buffered.subarray(at));
  });
}

/**
 * Runs messages and answers with PostgreSQL's bytes. Through `execProtocolRawStream`, not
 * `execProtocolRawSync`: the latter also parses every answer into message objects for PGlite's own
 * query API and keeps them until that API's next call, which the studio never makes. Every row
 * ever read stayed in this thread's heap (84 MB after one 1,000-stream bench, growing with every
 * run) and was decoded once more for nothing. The raw stream hands over the bytes alone; with
 * `syncToFs: false` it does all its work before it returns (a failure still rejects, unhandled,
 * and ends the thread as before).
 */
function execute(messages: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  void pg.execProtocolRawStream(messages, { syncToFs: false, onRawData: (chunk) => void parts.push(chunk.slice()) });
  const answer = parts.length === 1 ? parts[0] : Buffer.concat(parts);
  // Every answer to a Sync or a simple query ends in ReadyForQuery, whose last byte is the state.
  if (answer.length >= 6 && answer[answer.length - 6] === READY_FOR_QUERY) transactionState = String.fromCharCode(answer[answer.length - 1]);
  return answer;
}

function simpleQuery(sql: string): Buffer {
  const text = Buffer.from(sql + '\0');
  const message = Buffer.alloc(5 + text.length);
  message[0] = 0x51; // 'Q'
  message.writeInt32BE(4 + text.length, 1);
  text.copy(message, 5);
  return message;
}
