/**
 * More handles accepting connections on the studio's listening socket (issue 17).
 *
 * Since libuv 1.45 (Node 20 ships 1.46) a listening handle accepts one connection per pass of the event
 * loop (libuv pull request #3696), and a studio relaying hundreds of streams makes only a few hundred
 * passes a second. When people arrive faster than that (a burst of starts, followers coming back
 * after a deploy), their connections wait in the kernel's queue, up to a second at 200 new streams a
 * second, before the studio reads a byte of them. Each more handle on the same socket accepts one more
 * connection per pass, and every connection goes to the same HTTP server whichever handle took it.
 *
 * Node 20 can neither copy a descriptor nor share a port (`reusePort` came with 22.12), so the copies
 * are made the way Node's cluster shares a server: the socket's handle goes to a short-lived helper
 * process over IPC, and each time it comes back it arrives as a new descriptor of the same socket.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';

/** The helper: sends each handle straight back, and ends after the last (numbered 0). It never listens on them. */
const ECHO = "process.on('message', (n, handle) => process.send(n, handle, () => { if (n === 0) process.exit(0); }));";

/**
 * Adds `count` handles that accept on `server`'s socket and hand each connection to `server`.
 * `backlog`: the one `server` listens with (each handle's listen sets the socket's anew).
 * Answers the function that closes them: call it before closing `server`, or the port keeps
 * accepting through them.
 */
export async function acceptOnMoreHandles(server: net.Server, count: number, backlog: number): Promise<() => void> {
  // The bound socket itself (a TCP handle): sent as it is, it reaches the helper without being listened on there.
  const handle = (server as unknown as { _handle: net.Server | null })._handle;
  if (!handle || count < 1) return () => {};
  const helper = spawn(process.execPath, ['-e', ECHO], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: {} });
  // Resolved once the helper has ended: its own copies, never listened on, are closed with it.
  const copies = new Promise<net.Server[]>((resolve, reject) => {
    const got: net.Server[] = [];
    // Only a handle is taken: listening on nothing would bind a new port on every interface.
    helper.on('message', (_n, copy: net.Server | undefined) => copy && got.push(copy));
    helper.once('error', reject);
    helper.once('exit', (code) =>
      got.length === count ? resolve(got) : reject(new Error(`The helper that copies the listening socket ended (exit code ${code}) after ${got.length} of ${count}`)),
    );
  });
  for (let n = count - 1; n >= 0; n--) helper.send(n, handle);
  const servers = (await copies).map((copy) => net.createServer().on('connection', (socket) => server.emit('connection', socket)).listen(copy, backlog));
  return () => {
    for (const s of servers) s.close();
  };
}
