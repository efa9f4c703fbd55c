// deploy/nginx.conf in front of two real studio processes on one PostgreSQL database (scale-out mode).
// The config run here is deploy/nginx.conf itself with only its addresses and file paths replaced, so
// a directive changed there is what this test exercises.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { startFakeLlm } from '@ai-story/fake-llm';
import { createParser } from 'eventsource-parser';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, Client, createTestDatabase, spawnStudio, TEST_DB, type TestDatabase } from './helpers.ts';
import { findNginx, startNginx } from './local-nginx.ts';


const NGINX = findNginx();
// CI installs nginx (.ci/run): there a missing binary is a failure, not a skip.
if (!NGINX && process.env.CI) throw new Error('nginx is not installed: node scripts/ensure-system.mjs installs it');
if (!NGINX) console.warn('[deploy-nginx] skipped: nginx is not installed (apt-get install -y --no-install-recommends nginx, or node scripts/ensure-system.mjs)');
if (TEST_DB !== 'postgres') console.warn('[deploy-nginx] skipped on PGlite: several studios share one database only on PostgreSQL (TEST_DB=postgres)');

/** A studio's log lines (pino JSON on stdout): the requests it served, as url and status. */
class StudioLog {
  private text = '';
  append = (chunk: string) => {
    this.text += chunk;
  };
  served(): { url: string; status: number }[] {
    const urls = new Map<string, string>();
    const out: { url: string; status: number }[] = [];
    for (const line of this.text.split('\n')) {
      if (!line.startsWith('{')) continue;
      const entry = JSON.parse(line) as { reqId?: string; msg?: string; req?: { url: string }; res?: { statusCode: number } };
      if (entry.msg === 'incoming request' && entry.reqId && entry.req) urls.set(entry.reqId, entry.req.url);
      if (entry.msg === 'request completed' && entry.reqId && entry.res) out.push({ url: urls.get(entry.reqId) ?? '?', status: entry.res.statusCode });
    }
    return out;
  }
}

/** A request with node:http: the body as it arrives, chunk by chunk, undecoded (no transparent gunzip). */
function rawRequest(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; onChunk?: (chunk: Buffer) => void } = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        opts.onChunk?.(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

describe.skipIf(!NGINX || TEST_DB !== 'postgres')('deploy/nginx.conf in front of two studios (postgres)', () => {
  let testDb: TestDatabase;
  let studios: NonNullable<Awaited<ReturnType<typeof spawnStudio>>>[] = [];
  const logs = [new StudioLog(), new StudioLog()];
  let nginx: Awaited<ReturnType<typeof startNginx>>;
  let fake: Awaited<ReturnType<typeof startFakeLlm>>;
  let admin: Client;

  beforeAll(async () => {
    fake = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    testDb = await createTestDatabase();
    // Scale-out mode: REDIS_URL lets a second studio share the database; a prefix of its own keeps
    // this test's keys apart from other runs on the same Redis. Both share DATA_DIR, so the media
    // folder is shared as the compose file's volume shares it.
    const env = { REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', REDIS_PREFIX: `test-nginx-${randomUUID().slice(0, 8)}:`, TRUST_PROXY: '127.0.0.1', LOG_LEVEL: 'info' };
    // One after the other: the second finds the admin the first created.
    for (const log of logs) studios.push(await spawnStudio(testDb, { env, onStdout: log.append }));
    const port = (base: string) => Number(new URL(base).port);
    nginx = await startNginx(NGINX!, [port(studios[0].base), port(studios[1].base)]);
    admin = new Client(nginx.base);
    const login = await admin.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password });
    if (login.status !== 200) throw new Error(`login through nginx failed: ${login.status}`);
  }, 240_000);

  afterAll(async () => {
    await nginx?.stop();
    for (const s of studios) await s.kill();
    await testDb?.destroy();
    await fake?.close();
  });

  /** Waits until both studios have logged the requests whose url contains `marker`, then returns them per studio. */
  async function servedBy(marker: string, expected: number) {
    for (let i = 0; ; i++) {
      const seen = logs.map((l) => l.served().filter((r) => r.url.includes(marker)));
      if (seen[0].length + seen[1].length >= expected || i > 100) return seen;
      await new Promise((r) => setTimeout(r, 50)); // log lines reach the pipe a moment after the response
    }
  }

  it('spreads requests over both studios, and a session signed in through one is honoured by the other', { timeout: 60_000 }, async () => {
    const marker = `probe-${randomUUID().slice(0, 8)}`;
    for (let i = 0; i < 8; i++) {
      const me = await admin.get(`/api/v1/auth/me?${marker}=${i}`);
      expect(me.status).toBe(200);
      expect(me.body.email).toBe(ADMIN.email);
    }
    const [first, second] = await servedBy(marker, 8);
    expect(first.length).toBeGreaterThan(0);
    expect(second.length).toBeGreaterThan(0);
    expect(first.length + second.length).toBe(8);
    expect([...first, ...second].every((r) => r.status === 200)).toBe(true);
  });

  it('sets X-Forwarded-Proto itself: a client cannot claim https through it to get a Secure cookie', { timeout: 30_000 }, async () => {
    const login = (base: string) =>
      fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-proto': 'https' }, body: JSON.stringify({ email: ADMIN.email, password: ADMIN.password }) });
    const through = await login(nginx.base);
    expect(through.status).toBe(200);
    expect(through.headers.get('set-cookie')).not.toMatch(/;\s*secure/i);
    // The control: the studio does believe the header from an address TRUST_PROXY names.
    const direct = await login(studios[0].base);
    expect(direct.headers.get('set-cookie')).toMatch(/;\s*secure/i);
  });

  it('passes a run\'s event stream on as it is written: tokens arrive over many reads before done, never gzipped', { timeout: 90_000 }, async () => {
    const provider = await admin.post('/api/v1/models/providers/', { name: 'paced', api_url: fake.url, model_name: 'fake-model?ttft=10&tps=20&tokens=60' });
    expect(provider.status).toBe(201);
    const project = await admin.post('/api/v1/projects/', { name: 'through nginx', original_topic: '雨夜的便利店里，店员收到一封没有署名的信' });
    expect(project.status).toBe(201);

    const events: { type: string; run_id?: string; content?: string; full_text?: string }[] = [];
    let readsWithTokens = 0;
    let statusAtFirstToken: Promise<string> | undefined;
    const parser = createParser({ onEvent: (e) => events.push(JSON.parse(e.data)) });
    const decoder = new TextDecoder();
    // The seed's start-and-stream endpoint: the stream comes from the studio that runs the run.
    const res = await rawRequest(`${nginx.base}/api/v1/projects/${project.body.id}/rewrite-stream`, {
      method: 'POST',
      headers: { cookie: admin.cookie, 'content-type': 'application/json', accept: 'text/event-stream', 'accept-encoding': 'gzip, deflate, br' },
      body: JSON.stringify({ provider_id: provider.body.id }),
      onChunk: (chunk) => {
        const before = events.length;
        parser.feed(decoder.decode(chunk, { stream: true }));
        if (!events.slice(before).some((e) => e.type === 'token')) return;
        readsWithTokens++;
        // Asked while the stream is still open: a proxy that held the stream back would only let the
        // first token through once the run had finished.
        statusAtFirstToken ??= admin.get(`/api/v1/runs/${events.find((e) => e.run_id)!.run_id}/`).then((r) => r.body.status as string);
      },
    });

    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(res.headers['content-encoding']).toBeUndefined();
    const tokens = events.filter((e) => e.type === 'token');
    expect(tokens.length).toBeGreaterThanOrEqual(20);
    expect(events.at(-1)!.type).toBe('done');
    expect(tokens.map((t) => t.content).join('')).toBe(events.at(-1)!.full_text);
    // A proxy that held the stream back would hand over these few kilobytes in a read or two.
    expect(readsWithTokens).toBeGreaterThanOrEqual(10);
    expect(['queued', 'running']).toContain(await statusAtFirstToken);

    // The control: nginx does compress what it may (so the check above could fail).
    const docs = await rawRequest(`${nginx.base}/docs/json`, { headers: { 'accept-encoding': 'gzip' } });
    expect(docs.status).toBe(200);
    expect(docs.headers['content-encoding']).toBe('gzip');
  });

  it('takes an image upload of a few megabytes, which either studio then serves from the shared media folder', { timeout: 90_000 }, async () => {
    const project = await admin.post('/api/v1/projects/', { name: 'uploads', original_topic: '海边的灯塔' });
    // Noise does not compress: ~3 MB of PNG, well over nginx's default 1 MB body limit.
    const width = 1024;
    const picture = await sharp(randomBytes(width * width * 3), { raw: { width, height: width, channels: 3 } }).png().toBuffer();
    expect(picture.length).toBeGreaterThan(3 * 1024 * 1024);
    // Origin as a browser on this address sends it: the studio compares it with the Host nginx passes on.
    const upload = (body: Buffer) =>
      rawRequest(`${nginx.base}/api/v1/projects/${project.body.id}/characters/pictures/`, {
        method: 'POST',
        headers: { cookie: admin.cookie, 'content-type': 'image/png', origin: nginx.base },
        body,
      });
    const uploaded = await upload(picture);
    expect(uploaded.status, uploaded.body.toString()).toBe(201);
    const { media_id } = JSON.parse(uploaded.body.toString()) as { media_id: string };

    const marker = `m-${randomUUID().slice(0, 8)}`;
    for (let i = 0; i < 4; i++) {
      const file = await rawRequest(`${nginx.base}/api/v1/media/${media_id}?${marker}=${i}`, { headers: { cookie: admin.cookie } });
      expect(file.status).toBe(200);
      expect(sha(file.body)).toBe(sha(picture));
    }
    const [first, second] = await servedBy(marker, 4);
    expect(first.length).toBeGreaterThan(0);
    expect(second.length).toBeGreaterThan(0);

    // Past the studio's 20 MB: refused by nginx itself, every time (not a 502 from a studio that
    // closed the connection while nginx was still sending the body).
    const tooBig = await upload(Buffer.alloc(21 * 1024 * 1024, 1));
    expect(tooBig.status).toBe(413);
    // Left aside: the setrlimit alert, where this machine's hard limit is below worker_rlimit_nofile.
    const problems = nginx.errors().split('\n').filter((l) => /\[(crit|alert|emerg)\]/.test(l) && !l.includes('setrlimit(RLIMIT_NOFILE'));
    expect(problems).toEqual([]);
  });
});
