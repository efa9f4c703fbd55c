/**
 * Runs the simulated upstream on its own port:
 *   npm run fake-llm -- --port 4010 --tps 30 --tokens 500 --ttft 200 --quirk keepalive --api-key sk-test
 * Prints the base URL to give an OpenAI client; stops on SIGINT / SIGTERM.
 */
import { parseArgs } from 'node:util';
import { QUIRKS } from './knobs.ts';
import { startFakeLlm } from './server.ts';

const HELP = `Usage: fake-llm [options]
  --port <n>          port to listen on (default 4010; 0 picks a free one)
  --host <addr>       address to bind (default 127.0.0.1)
  --base-path <path>  API prefix (default /v1)
  --api-key <key>     require "Authorization: Bearer <key>"
  --ttft <ms>         default time to first token (300)
  --tps <n>           default tokens per second (40)
  --tokens <n>        default answer length in tokens (300)
  --quirk <list>      quirks applied to every request, comma-separated
  -h, --help          this text

Per request, knobs go in the model name (fake-model?tps=20&tokens=500&quirk=cut_mid_stream)
or in x-fake-<knob> headers (x-fake-tps, x-fake-tokens, x-fake-ttft-ms, x-fake-quirk, x-fake-after,
x-fake-fail-times, x-fake-retry-after, x-fake-reasoning-tokens).
Quirks: ${QUIRKS.join(', ')}`;

function main(): Promise<void> | void {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: 'string', default: '4010' },
        host: { type: 'string', default: '127.0.0.1' },
        'base-path': { type: 'string' },
        'api-key': { type: 'string' },
        ttft: { type: 'string' },
        tps: { type: 'string' },
        tokens: { type: 'string' },
        quirk: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${HELP}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(HELP);
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`Invalid --port ${values.port}: expected 0-65535`);
    process.exit(2);
  }
  return run(port, values);
}

async function run(port: number, values: Record<string, string | boolean | undefined>): Promise<void> {
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  let server;
  try {
    server = await startFakeLlm({
      port,
      host: str('host'),
      basePath: str('base-path'),
      apiKey: str('api-key'),
      defaults: { ttft_ms: num(str('ttft')), tps: num(str('tps')), tokens: num(str('tokens')), quirks: str('quirk') },
    });
  } catch (e) {
    console.error(`fake-llm: ${(e as Error).message}`);
    process.exit(1);
  }
  const d = server.handler.defaults;
  console.log(`fake-llm listening: ${server.url}`);
  console.log(`  ttft ${d.ttft_ms} ms, ${d.tps} tokens/s, ${d.tokens} tokens${d.quirks.size ? `, quirks: ${[...d.quirks].join(',')}` : ''}`);
  const stop = () => {
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));

await main();
