import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { openDatabase } from '../src/db/client.ts';
import type { TestDatabase } from './helpers.ts';

/**
 * A TCP proxy in front of a server (PostgreSQL): `cut()` drops every connection and refuses new ones
 * until `restore()` — a real outage as the studio sees it, without stopping a server others share.
 */
export async function startTcpProxy(target: { host: string; port: number }) {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const track = (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((client) => {
        const upstream = connect(target.port, target.host);
        track(client);
        track(upstream);
        const drop = () => {
          client.destroy();
          upstream.destroy();
        };
        client.on('error', drop);
        upstream.on('error', drop);
        client.pipe(upstream).pipe(client);
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as AddressInfo).port;
        server = s;
        resolve();
      });
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      if (!server) return resolve();
      server.close(() => resolve());
      server = undefined;
      for (const s of sockets) s.destroy();
    });
  await listen();
  return {
    get port() {
      return port;
    },
    /** Every open connection is reset and new ones are refused. */
    cut: stop,
    /** Accepts connections again, on the same port. */
    restore: listen,
    /** Every open connection is reset; new ones are taken (a network blip, a proxy restarting). */
    drop: () => {
      for (const s of sockets) s.destroy();
    },
    close: stop,
  };
}

/** `testDb` (PostgreSQL) reached through a TCP proxy, for studios whose database a test cuts off. */
export async function behindProxy(testDb: TestDatabase) {
  const direct = new URL(testDb.location.databaseUrl!);
  const proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
  const viaProxy = new URL(direct);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(proxy.port);
  const databaseUrl = viaProxy.toString();
  const database: TestDatabase = {
    ...testDb,
    location: { ...testDb.location, databaseUrl },
    open: () => openDatabase({ dataDir: testDb.location.dataDir, databaseUrl }),
  };
  return { proxy, database };
}
