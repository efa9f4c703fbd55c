import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFakeLlmHandler, type FakeLlmHandler, type FakeLlmOptions } from './handler.ts';

export interface StartOptions extends FakeLlmOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
}

export interface FakeLlmServer {
  /** Base URL for an OpenAI client, ending in the base path (`http://127.0.0.1:4010/v1`). */
  url: string;
  port: number;
  handler: FakeLlmHandler;
  /** Stops listening and drops open connections (stalled streams included). */
  close(): Promise<void>;
}

/** Starts the simulated upstream on its own HTTP server. */
export async function startFakeLlm(options: StartOptions = {}): Promise<FakeLlmServer> {
  const { port = 0, host = '127.0.0.1', ...handlerOptions } = options;
  const handler = createFakeLlmHandler(handlerOptions);
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
  return {
    url: `http://${hostPart}:${address.port}${handler.basePath}`,
    port: address.port,
    handler,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
