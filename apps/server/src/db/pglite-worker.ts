/**
 * The embedded database's own thread (pglite-thread.ts starts it): PGlite executes SQL synchronously in
 * WebAssembly, so here it blocks this thread only. Each connection is a MessagePort carrying the
 * PostgreSQL wire protocol both ways; when a connection's turn on the session comes, every complete
 * message it has sent goes to PGlite in one call, so statements a client pipelines run back to back.
 *
 * Run as a process (`node pglite-worker.js <pgdata>`; see worker-module.ts), it creates the database and exits:
 * creating one (initdb) grows PGlite's WebAssembly memory by some 100 MB that is never given back,
 * which a process of its own returns to the system when it ends.
 */
import { PGlite } from '@electric-sql/pglite';
import { isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads';

export type ToWorker = { type: 'connect'; port: MessagePort; priority: boolean } | { type: 'close' };
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
  if (message.type === 'connect') serve(message.port, message.priority);
  else {
    await pg.close();
    post({ type: 'closed' });
  }
});

/**
 * A client connection: the messages it sent that wait their turn on the session, and how it is answered.
 * `priority`: the reads a person waits on (Database.readDb), run before what other connections queued.
 */
interface Connection {
  readonly priority: boolean;
  readonly reply: (answer: Uint8Array) => void;
  readonly waiting: Uint8Array[];
  /** Gone: once what it sent has run, the session is given back (rolled back if it left a transaction). */
  ended: boolean;
}

/**
 * PGlite has one session, whoever connects. A connection holds it from a message until an answer
 * leaves it idle: through a transaction, and through a statement described before it is bound (a Parse
 * and Describe answered without a ReadyForQuery). In between, the session goes to the connection with
 * priority if it has something waiting, otherwise to the one that has waited longest. Statement names
 * never clash: postgres.js gives each connection's prepared statements a random prefix of its own.
 */
const queued: Connection[] = [];
let holder: Connection | null = null;
let turnScheduled = false;

function submit(connection: Connection, messages: Uint8Array) {
  connection.waiting.push(messages);
  if (!queued.includes(connection)) queued.push(connection);
  scheduleTurn();
}

/** One connection's turn per pass of the event loop: messages that came meanwhile are queued before the next is chosen. */
function scheduleTurn() {
  if (turnScheduled || !queued.length) return;
  turnScheduled = true;
  setImmediate(turn);
}

function turn() {
  turnScheduled = false;
  const connection = holder ?? queued.find((c) => c.priority) ?? queued[0];
  if (!connection || !queued.includes(connection)) return; // the holder has nothing more yet: all wait for it
  queued.splice(queued.indexOf(connection), 1);
  // Everything it has sent goes to PGlite in one call: pipelined statements run back to back.
  const messages = connection.waiting.length === 1 ? connection.waiting[0] : Buffer.concat(connection.waiting);
  connection.waiting.length = 0;
  if (messages.length) {
    const { answer, ready } = execute(messages);
    holder = ready && transactionState === 'I' ? null : connection;
    connection.reply(answer);
  }
  if (connection.ended) release(connection);
  scheduleTurn();
}

/** A connection that went away: a transaction it left open is rolled back, as a server would, and the session freed. */
function release(connection: Connection) {
  if (holder !== connection) return;
  if (transactionState !== 'I') execute(simpleQuery('rollback'));
  holder = null;
}

/** One client connection: its bytes cut into complete messages, which wait for the session (above). */
function serve(port: MessagePort, priority: boolean) {
  let buffered: Buffer = Buffer.alloc(0);
  let started = false;
  const connection: Connection = {
    priority,
    waiting: [],
    ended: false,
    reply: (answer) => {
      if (!answer.length || connection.ended) return;
      // Handed over, not copied: only an array that is all of its buffer (a pooled one would go with it).
      const own = answer.byteOffset === 0 && answer.byteLength === answer.buffer.byteLength ? answer : new Uint8Array(answer);
      port.postMessage(own, [own.buffer as ArrayBuffer]);
    },
  };
  const end = () => {
    port.close();
    connection.ended = true;
    submit(connection, new Uint8Array(0)); // its turn comes after what it sent: then it lets the session go
  };
  port.on('message', (chunk: Uint8Array | null) => {
    if (chunk === null) return end();
    buffered = buffered.length ? Buffer.concat([buffered, chunk]) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let at = 0;
    let batchFrom = 0;
    const flushBatch = () => {
      // A view is enough: `buffered` is never written to, only replaced by new buffers.
      if (at > batchFrom) submit(connection, buffered.subarray(batchFrom, at));
      batchFrom = at;
    };
    for (;;) {
      const left = buffered.length - at;
      if (!started) {
        // Before the startup message, requests have no type byte: a length, then a code.
        if (left < 8 || left < buffered.readInt32BE(at)) break;
        const length = buffered.readInt32BE(at);
        const code = buffered.readInt32BE(at + 4);
        if (code === SSL_REQUEST) connection.reply(new Uint8Array([0x4e])); // 'N': no TLS in-process
        else if (code !== CANCEL_REQUEST) {
          started = true;
          submit(connection, buffered.subarray(at, at + length));
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
function execute(messages: Uint8Array): { answer: Uint8Array; ready: boolean } {
  const parts: Uint8Array[] = [];
  void pg.execProtocolRawStream(messages, { syncToFs: false, onRawData: (chunk) => void parts.push(chunk.slice()) });
  const answer = parts.length === 1 ? parts[0] : Buffer.concat(parts);
  // Every answer to a Sync or a simple query ends in ReadyForQuery, whose last byte is the state.
  const ready = answer.length >= 6 && answer[answer.length - 6] === READY_FOR_QUERY;
  if (ready) transactionState = String.fromCharCode(answer[answer.length - 1]);
  return { answer, ready };
}

function simpleQuery(sql: string): Buffer {
  const text = Buffer.from(sql + '\0');
  const message = Buffer.alloc(5 + text.length);
  message[0] = 0x51; // 'Q'
  message.writeInt32BE(4 + text.length, 1);
  text.copy(message, 5);
  return message;
}
