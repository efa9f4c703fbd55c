import { execFileSync } from 'node:child_process';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { acceptOnMoreHandles } from './accept-handles.ts';

const open: (() => void)[] = [];
afterEach(() => {
  for (const close of open.splice(0)) close();
});

/** An HTTP server on a free port that answers every request with `ok`, counting the connections it is given. */
async function okServer(backlog = 511) {
  const server = http.createServer((_req, res) => res.end('ok'));
  const counted = { connections: 0 };
  server.on('connection', () => counted.connections++);
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog }, resolve));
  open.push(() => server.close());
  return { server, counted, port: (server.address() as AddressInfo).port };
}

/**
 * Opens `n` connections while this thread is held busy, so that all of them wait in the kernel's queue
 * together, and answers how many the server had accepted by the end of the loop's next pass.
 */
async function acceptedInOnePass(port: number, counted: { connections: number }, n: number) {
  const sockets = Array.from({ length: n }, () => net.connect(port, '127.0.0.1'));
  open.push(() => sockets.forEach((s) => s.destroy()));
  const accepted = await new Promise<number>((resolve) =>
    // After the connects' own ticks (net.connect sends them at the next tick): the handshakes are under way.
    process.nextTick(() => {
      const until = Date.now() + 100;
      while (Date.now() < until); // the loop cannot accept meanwhile: all n connections wait in the queue
      // The first immediate runs at the end of this pass, the second at the end of the next: one poll between.
      setImmediate(() => {
        const before = counted.connections;
        setImmediate(() => resolve(counted.connections - before));
      });
    }),
  );
  return { accepted, sockets };
}

/** What the server answers a GET on `socket`, to the end of the connection. */
function answer(socket: net.Socket) {
  return new Promise<string>((resolve, reject) => {
    let text = '';
    socket.on('data', (d) => (text += d)).once('end', () => resolve(text)).once('error', reject);
    socket.write('GET / HTTP/1.1\r\nHost: studio\r\nConnection: close\r\n\r\n');
  });
}

/** The listening socket's queue length as the kernel has it (iproute2's `ss`: a listening socket's Send-Q). */
const kernelBacklog = (port: number) => Number(execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' }).trim().split(/\s+/)[2]);
const hasSs = (() => {
  try {
    execFileSync('ss', ['-V']);
    return true;
  } catch {
    return false;
  }
})();

const connectOutcome = (port: number) =>
  new Promise<string>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => resolve('connected')).once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    open.push(() => socket.destroy());
  });

describe('accepting on more handles of the listening socket', () => {
  test('a listening handle accepts one waiting connection per pass of the event loop (why there are more)', async () => {
    const { port, counted } = await okServer();
    const { accepted, sockets } = await acceptedInOnePass(port, counted, 8);
    expect(accepted).toBe(1);
    for (const text of await Promise.all(sockets.map(answer))) expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/);
  });

  test('with three more handles, a pass accepts four, and every connection reaches the one server', async () => {
    const { server, port, counted } = await okServer();
    const closeCopies = await acceptOnMoreHandles(server, 3, 511);
    open.push(closeCopies);
    const { accepted, sockets } = await acceptedInOnePass(port, counted, 8);
    expect(accepted).toBe(4);
    for (const text of await Promise.all(sockets.map(answer))) expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/);
    expect(counted.connections).toBe(8);
  });

  test.skipIf(!hasSs)('the copies keep the queue length the server listens with (each listen sets it anew)', async () => {
    const { server, port } = await okServer(1000);
    expect(kernelBacklog(port)).toBe(1000);
    open.push(await acceptOnMoreHandles(server, 2, 1000));
    expect(kernelBacklog(port)).toBe(1000);
  });

  test('the port stays open until the copies are closed too, and is refused after', async () => {
    const { server, port } = await okServer();
    const closeCopies = await acceptOnMoreHandles(server, 2, 511);
    await new Promise((resolve) => server.close(resolve));
    // The server's own handle is closed; the copies still accept, for the same server.
    expect(await connectOutcome(port)).toBe('connected');
    closeCopies();
    expect(await connectOutcome(port)).toBe('ECONNREFUSED');
  });
});
