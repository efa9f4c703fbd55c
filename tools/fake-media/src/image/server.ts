import { listen } from '../http-kit.ts';
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
  const server = await listen(handler, port, host);
  handler.origin = server.url;
  return {
    url: server.url,
    port: server.port,
    stats: handler.stats,
    handler,
    close: server.close,
  };
}
