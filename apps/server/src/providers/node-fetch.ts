/**
 * A `fetch` for the openai SDK built on node:http/node:https, whose Response also hands over the raw
 * IncomingMessage (`nodeBodyOf`), so that streamChat reads upstream tokens straight off the socket.
 *
 * Why: at a model's pace every token is its own network read, and reading a body through global
 * fetch (undici + WHATWG streams) costs up to twice the CPU per read of an IncomingMessage: with
 * 50 streams × 600 tokens at 50 tokens/s, the same bytes parsed the same way took 66–101 ms CPU per
 * 1,000 tokens through fetch and 37–56 ms through node:http. bench/llm-client.bench.ts keeps a
 * fetch reader beside streamChat to show the difference.
 *
 * The SDK still builds the request and maps error statuses: for that the Response carries a web body
 * too, pulled from the IncomingMessage only when someone reads it (`text()` of an error or of a JSON
 * answer). Like global fetch: redirects are followed (Authorization dropped across origins), a request
 * that meets a kept-alive connection the server has just closed is sent again on a new one, no proxy,
 * no decompression (no Accept-Encoding is sent, so servers answer uncompressed).
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';

const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };
const nodeBodies = new WeakMap<Response, IncomingMessage>();
const MAX_REDIRECTS = 20;
/** How a write on a connection the server has already closed fails. */
const STALE_CONNECTION = new Set(['ECONNRESET', 'EPIPE']);

/** The IncomingMessage behind a Response from `nodeFetch`; read it or its web body, not both. */
export function nodeBodyOf(response: Response): IncomingMessage | undefined {
  return nodeBodies.get(response);
}

export async function nodeFetch(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
  let url = new URL(input instanceof Request ? input.url : input);
  let method = (init.method ?? 'GET').toUpperCase();
  let body = bytesOf(init.body);
  const headers: Record<string, string> = {};
  for (const [name, value] of new Headers(init.headers)) headers[name] = value;
  for (let redirects = 0; ; redirects++) {
    const res = await send(url, method, headers, body, init.signal ?? undefined);
    const location = res.headers.location;
    if (!location || ![301, 302, 303, 307, 308].includes(res.statusCode!) || redirects === MAX_REDIRECTS || init.redirect === 'manual') {
      return toResponse(res, url, method);
    }
    res.resume();
    const next = new URL(location, url);
    // The fetch standard's rules: 303, and 301/302 after a POST, go on as a GET without a body.
    if (res.statusCode === 303 || (method === 'POST' && res.statusCode! < 303)) {
      if (method !== 'HEAD') method = 'GET';
      body = undefined;
      for (const name of ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location']) delete headers[name];
    }
    if (next.origin !== url.origin) delete headers.authorization;
    url = next;
  }
}

function bytesOf(body: RequestInit['body']): Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  // Streams, forms and blobs are for uploads, which nothing here sends through this client.
  throw new TypeError(`nodeFetch sends string or byte bodies only, not ${Object.prototype.toString.call(body)}`);
}

function send(url: URL, method: string, headers: Record<string, string>, body: Buffer | undefined, signal: AbortSignal | undefined) {
  return new Promise<IncomingMessage>((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const lib = url.protocol === 'https:' ? https : http;
    const agent = agents[url.protocol as keyof typeof agents];
    if (!agent) return reject(new TypeError(`nodeFetch: unsupported protocol ${url.protocol}`));
    let res: IncomingMessage | undefined;
    const onAbort = () => {
      const reason = abortReason(signal!);
      // The reader of the body sees the abort, not a generic cut; the socket is closed, not pooled.
      res?.destroy(reason);
      req.destroy(reason);
    };
    const req = lib.request(url, { method, headers: body ? { ...headers, 'content-length': String(body.length) } : headers, agent }, (r) => {
      res = r;
      // An error on a body nobody reads (a cut, an abort) must not become an uncaught exception;
      // whoever reads the body gets it from the stream all the same.
      r.on('error', () => {});
      r.once('close', () => signal?.removeEventListener('abort', onAbort));
      resolve(r);
    });
    req.on('error', (e) => {
      signal?.removeEventListener('abort', onAbort);
      // A kept-alive connection the server closed just as it was reused: nothing was answered, so the
      // request goes again at once, on another connection (Node's documented pattern; browsers and
      // undici do the same), instead of failing into a run's retry and its back-off. Each such
      // connection is gone once it fails, so this ends with the pool's idle connections at most.
      if (req.reusedSocket && !res && STALE_CONNECTION.has((e as NodeJS.ErrnoException).code ?? '') && !signal?.aborted) {
        resolve(send(url, method, headers, body, signal));
        return;
      }
      reject(e);
    });
    signal?.addEventListener('abort', onAbort, { once: true });
    req.end(body);
  });
}

function toResponse(res: IncomingMessage, url: URL, method: string): Response {
  const headers = new Headers();
  for (let i = 0; i < res.rawHeaders.length; i += 2) headers.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
  const status = res.statusCode!;
  // The Response constructor throws on a body with these statuses.
  const nullBody = method === 'HEAD' || status === 204 || status === 205 || status === 304;
  if (nullBody) res.resume();
  const response = new Response(nullBody ? null : webBody(res), { status, headers });
  Object.defineProperty(response, 'url', { value: url.href });
  if (!nullBody) nodeBodies.set(response, res);
  return response;
}

/** Pulled from the IncomingMessage on demand only (highWaterMark 0), so it costs nothing unread. */
function webBody(res: IncomingMessage): ReadableStream<Uint8Array> {
  let chunks: AsyncIterator<Buffer> | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        chunks ??= res[Symbol.asyncIterator]();
        const next = await chunks.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      cancel() {
        res.destroy();
      },
    },
    { highWaterMark: 0 },
  );
}

/** What fetch rejects with: the signal's reason, by default an AbortError (which the SDK recognises). */
function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('This operation was aborted', 'AbortError');
}
