import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { nodeBodyOf, nodeFetch } from './node-fetch.ts';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void, host = '127.0.0.1'): Promise<string> {
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b)).on('end', () => handler(req, res, Buffer.concat(parts)));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://${host}:${(server.address() as AddressInfo).port}`;
}

describe('nodeFetch', () => {
  test('aborting mid-body ends the read of the IncomingMessage at once and closes the socket', async () => {
    let serverSocketClosed: Promise<unknown> | undefined;
    const url = await serve((req, res) => {
      serverSocketClosed = once(req.socket, 'close');
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: first\n\n');
      // …and then nothing: only the abort can end the read.
    });
    const ac = new AbortController();
    const response = await nodeFetch(url, { method: 'POST', body: '{}', signal: ac.signal });
    const body = nodeBodyOf(response)!;
    body.setEncoding('utf8');
    const read: string[] = [];
    const error = await (async () => {
      try {
        for await (const s of body) {
          read.push(s);
          ac.abort();
        }
      } catch (e) {
        return e;
      }
    })();
    expect(read).toEqual(['data: first\n\n']);
    expect(error).toMatchObject({ name: 'AbortError' });
    await serverSocketClosed;
    expect(body.destroyed).toBe(true);
  });

  test('an error body is read through the web body, with its status and headers, and the same socket serves the next request', async () => {
    const sockets = new Set<unknown>();
    const url = await serve((req, res) => {
      sockets.add(req.socket);
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
      res.end(JSON.stringify({ error: { message: 'slow down' } }));
    });
    for (let i = 0; i < 2; i++) {
      const response = await nodeFetch(url, { method: 'POST', body: '{}' });
      expect(response.status).toBe(429);
      expect(response.ok).toBe(false);
      expect(response.headers.get('retry-after')).toBe('7');
      expect(await response.json()).toEqual({ error: { message: 'slow down' } });
    }
    expect(sockets.size).toBe(1);
  });

  test('the web body is pulled only when read: the IncomingMessage still holds every byte', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('雨夜归人');
    });
    const response = await nodeFetch(url);
    const body = nodeBodyOf(response)!;
    // Let the whole body arrive: a web body that pulled eagerly would have taken it by now.
    await once(body, 'readable');
    body.setEncoding('utf8');
    let text = '';
    for await (const s of body) text += s;
    expect(text).toBe('雨夜归人');
  });

  test('a socket cut mid-body fails the read with ECONNRESET "aborted"', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: first\n\n', () => setTimeout(() => res.socket?.destroy(), 20));
    });
    const body = nodeBodyOf(await nodeFetch(url))!;
    const error = await (async () => {
      try {
        for await (const _ of body);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toMatchObject({ code: 'ECONNRESET', message: 'aborted' });
  });

  test('a request on a kept-alive connection the server has closed goes again on a new one, once per stale connection', async () => {
    // A server that answers the first request of each connection and resets the connection at the
    // second: what a client sees when a server's keep-alive timeout ends as it reuses the connection.
    const tcp = createTcpServer((socket) => {
      let requests = 0;
      socket.on('data', (b: Buffer) => {
        requests += b.toString().split('\r\n\r\n').length - 1;
        if (requests === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
        else socket.resetAndDestroy();
      });
    });
    const connections: unknown[] = [];
    tcp.on('connection', (socket) => connections.push(socket));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(tcp.address() as AddressInfo).port}/v1/models`;
    try {
      expect(await (await nodeFetch(url)).text()).toBe('ok');
      await new Promise((r) => setImmediate(r)); // the answered connection is back among the idle ones
      expect(await (await nodeFetch(url)).text()).toBe('ok');
      expect(connections).toHaveLength(2);
      // A new connection that fails is not sent again: its error is the caller's.
      const refused = createTcpServer((socket) => socket.resetAndDestroy());
      await new Promise<void>((r) => refused.listen(0, '127.0.0.1', r));
      try {
        await expect(nodeFetch(`http://127.0.0.1:${(refused.address() as AddressInfo).port}/v1/models`)).rejects.toMatchObject({ code: 'ECONNRESET' });
      } finally {
        refused.close();
      }
    } finally {
      for (const socket of connections) (socket as { destroy(): void }).destroy();
      tcp.close();
    }
  });

  test.each([204, 304])('a %i answer has a null body and does not throw', async (status) => {
    const url = await serve((_req, res) => {
      res.writeHead(status, { etag: '"x"' });
      res.end();
    });
    const response = await nodeFetch(url);
    expect(response.status).toBe(status);
    expect(response.body).toBeNull();
    expect(nodeBodyOf(response)).toBeUndefined();
  });

  test.each([
    ['a string', '{"a":"雨"}'],
    ['a Uint8Array', new TextEncoder().encode('{"a":"雨"}')],
    ['an ArrayBuffer', new TextEncoder().encode('{"a":"雨"}').buffer],
    ['a view into a larger buffer', new Uint8Array(new TextEncoder().encode('xx{"a":"雨"}yy').buffer, 2, 11)],
  ])('sends %s as the request body, with its length', async (_name, body) => {
    const url = await serve((req, res, got) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ length: req.headers['content-length'], type: req.headers['content-type'], got: got.toString() }));
    });
    const response = await nodeFetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: body as BodyInit });
    expect(await response.json()).toEqual({ length: '11', type: 'application/json', got: '{"a":"雨"}' });
  });

  test('a 307 or 308 is followed with method and body; a move to another origin drops the Authorization header', async () => {
    const echo = (req: IncomingMessage, res: ServerResponse, got: Buffer) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, path: req.url, auth: req.headers.authorization ?? null, got: got.toString() }));
    };
    const target = await serve(echo, 'localhost');
    const origin = await serve((req, res, got) => {
      if (req.url === '/same') res.writeHead(307, { location: '/moved' }).end();
      else if (req.url === '/other') res.writeHead(308, { location: `${target}/elsewhere` }).end();
      else echo(req, res, got);
    });
    const init = { method: 'POST', headers: { authorization: 'Bearer sk-secret' }, body: '{"n":1}' };
    const same = await nodeFetch(`${origin}/same`, init);
    expect(await same.json()).toEqual({ method: 'POST', path: '/moved', auth: 'Bearer sk-secret', got: '{"n":1}' });
    const other = await nodeFetch(`${origin}/other`, init);
    expect(await other.json()).toEqual({ method: 'POST', path: '/elsewhere', auth: null, got: '{"n":1}' });
    expect(other.url).toBe(`${target}/elsewhere`);
  });

  test('an https URL speaks TLS', async () => {
    const tcp = createTcpServer();
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const first = new Promise<Buffer>((resolve) =>
      tcp.once('connection', (socket) =>
        socket.once('data', (b: Buffer) => {
          resolve(b);
          socket.destroy();
        }),
      ),
    );
    try {
      await expect(nodeFetch(`https://127.0.0.1:${(tcp.address() as AddressInfo).port}/v1`)).rejects.toThrow();
      // A TLS handshake record (0x16), not "GET /v1 HTTP/1.1".
      expect((await first)[0]).toBe(0x16);
    } finally {
      tcp.close();
    }
  });
});
