import net from 'node:net';
import type { Duplex } from 'node:stream';

/** postgres.js 3.4.9 sends what a connection has queued at once when it reaches this size (connection.js `write`). */
const SENT_AT_ONCE = 1024;

/**
 * postgres.js gathers what a tick queues on a connection and sends it in one socket write at
 * setImmediate, but sends a queue of 1 KB or more right away. So a transaction larger than that (a
 * run's start with its prompt, an ending with its usage row, the starts and endings of a moment that
 * share one) went out in two or more writes, its COMMIT in the last: each a system call, and on
 * PostgreSQL a wake of the server's process. Here such a write waits until a smaller one follows
 * on the socket (postgres.js sends what came behind it, the COMMIT among it, at setImmediate of the
 * same turn), and they leave in one write; a large write that nothing follows leaves at the next
 * turn's timers. `socket` must write several chunks in one go when uncorked (net.Socket does; a
 * Duplex needs `_writev`).
 */
export function holdLargeWrites<S extends Duplex>(socket: S): S {
  const write = socket.write.bind(socket) as (chunk: Uint8Array, ...rest: unknown[]) => boolean;
  let holding: NodeJS.Timeout | undefined;
  const release = () => {
    clearTimeout(holding);
    holding = undefined;
    socket.uncork();
  };
  socket.write = ((chunk: Uint8Array, ...rest: unknown[]) => {
    const large = chunk.length >= SENT_AT_ONCE;
    if (!holding && large) {
      socket.cork();
      holding = setTimeout(release, 0);
    }
    const accepted = write(chunk, ...rest);
    if (holding && !large) release();
    return accepted;
  }) as S['write'];
  return socket;
}

let nextHost = 0;

/**
 * postgres.js's `socket` option for a PostgreSQL server (its parsed options: hosts and ports, or a
 * Unix socket's path): the connection postgres.js would make, its large writes held (holdLargeWrites).
 * Several hosts are tried in turn, one per connection, as postgres.js does.
 */
export function connectHoldingLargeWrites(options: { host: string[]; port: number[]; path?: string | false }): net.Socket {
  const i = nextHost++ % options.host.length;
  const [host, port] = [options.host[i], options.port[i] ?? options.port[0]];
  const socket = options.path ? net.connect(options.path) : net.connect(port, host);
  // As postgres.js marks its own: TLS takes the server's name from here (SNI, and checking its certificate).
  return holdLargeWrites(Object.assign(socket, { host, port }));
}
