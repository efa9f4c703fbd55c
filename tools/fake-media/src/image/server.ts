import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFakeImageHandler, type FakeImageHandler, type FakeImageOptions, type FakeImageStats } from './handler.ts';

export interface StartFakeImageOptions extends FakeImageOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
}

export interface FakeImageServer {
  /** The server's origin (`http://127.0.0.1:4011`): OpenAI/SiliconFlow base URL is `${url}/v1`, DashScope's is `url`. */
  url: string;
  port: number;
  stats: FakeImageStats;
  handler: FakeImageHandler;
  close(): Promise<void>;
}

/** Starts the simulated image vendors on their own HTTP server. */
export async function startFakeImage(options: StartFakeImageOptions = {}): Promise<FakeImageServer> {
  const { port = 0, host = '127.0.0.1', ...handlerOptions } = options;
  const handler = createFakeImageHandler(handlerOptions);
  const server = createServer({ keepAliveTimeout: 5_000 }, (req, res) => handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  handler.origin = `http://${hostPart}:${address.port}`;
  return {
    url: handler.origin,
    port: address.port,
    stats: handler.stats,
    handler,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
