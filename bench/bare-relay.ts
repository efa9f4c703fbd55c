/**
 * The least a Node relay can do (a bench reference, not part of the studio): the studio's two run
 * endpoints with nothing behind them — no database, no sign-in, no framework, no coalescing, no
 * event log. A start asks the upstream at once (node:http with keep-alive, as the studio's client
 * does) and answers 202; the events request writes one token event per upstream chunk, each parsed
 * with eventsource-parser and JSON.parse and sent with one JSON.stringify and one socket write.
 *
 * Beside the studio in bench/relay.bench.ts (`--db bare,…`), it separates what relaying costs in
 * Node on this machine from what the studio adds to it.
 *
 *   node --import tsx bench/bare-relay.ts --port 3999 --upstream http://127.0.0.1:3998/v1 --model fake-model
 */
import { randomUUID } from 'node:crypto';
import http, { type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { createParser } from 'eventsource-parser';

const { values } = parseArgs({ options: { port: { type: 'string' }, upstream: { type: 'string' }, model: { type: 'string' } } });
const upstream = new URL(`${values.upstream!.replace(/\/$/, '')}/chat/completions`);
const agent = new http.Agent({ keepAlive: true });
// A clean exit on the bench's SIGTERM, so that --cpu-prof writes its profile.
process.on('SIGTERM', () => process.exit(0));

/** A run: events before its reader attaches are held; after, written straight through. */
interface Run {
  held: string[];
  reader?: ServerResponse;
  ended: boolean;
}
const runs = new Map<string, Run>();

function send(run: Run, event: object, last = false) {
  const frame = `data: ${JSON.stringify(event)}\n\n`;
  if (run.reader) run.reader.write(frame);
  else run.held.push(frame);
  if (last) {
    run.ended = true;
    run.reader?.end();
  }
}

function start(id: string) {
  const run: Run = { held: [], ended: false };
  runs.set(id, run);
  send(run, { type: 'stage_update', status: 'running' });
  const body = JSON.stringify({ model: values.model, stream: true, messages: [{ role: 'user', content: id }] });
  const req = http.request(upstream, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
    const parser = createParser({
      onEvent: (e) => {
        if (e.data === '[DONE]') return;
        const content = JSON.parse(e.data).choices?.[0]?.delta?.content;
        if (content) send(run, { type: 'token', content });
      },
    });
    res.setEncoding('utf8');
    res.on('data', (text: string) => parser.feed(text));
    res.on('end', () => send(run, { type: 'done' }, true));
    // A body cut midway ends without 'end': the reader is told, not left waiting.
    res.on('error', (err) => send(run, { type: 'error', code: 'network', message: err.message }, true));
  });
  req.on('error', (err) => send(run, { type: 'error', code: 'network', message: err.message }, true));
  req.end(body);
}

http
  .createServer((req, res) => {
    const url = req.url ?? '';
    if (req.method === 'POST' && /\/stages\/\w+\/runs\/?$/.test(url)) {
      req.resume();
      const id = randomUUID();
      start(id);
      res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ id }));
      return;
    }
    const events = url.match(/^\/api\/v1\/runs\/([\w-]+)\/events/);
    const run = events && runs.get(events[1]);
    if (!run) return void res.writeHead(url === '/healthz' ? 200 : 404).end();
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (const frame of run.held) res.write(frame);
    run.held = [];
    if (run.ended) res.end();
    else run.reader = res;
    res.on('close', () => runs.delete(events[1]));
  })
  // The studio's own queue of connections (serve.ts): with Node's 511, 1,600 streams arriving in a second
  // were refused here (68 timed out or were reset) and not there, which is the queue's doing, not relaying's.
  .listen({ port: Number(values.port), host: '127.0.0.1', backlog: 4096 });
