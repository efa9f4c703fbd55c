import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { fetchRemoteMedia, isNonPublicAddress, RemoteMediaError } from './fetch-remote.ts';

let server: Server;
let origin: string;
let png: Buffer;
let hits = 0;

beforeAll(async () => {
  png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#336699' } }).png().toBuffer();
  server = createServer((req, res) => {
    hits++;
    if (req.url === '/redirect-to-private') return void res.writeHead(302, { location: 'http://10.0.0.1/x.png' }).end();
    if (req.url === '/big.png') return void res.writeHead(200, { 'content-type': 'image/png' }).end(Buffer.concat([png, Buffer.alloc(5000)]));
    res.writeHead(200, { 'content-type': 'image/png' }).end(png);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const opts = (allowHostOf?: string) => ({ allowHostOf, maxBytes: 1_000_000, signal: AbortSignal.timeout(10_000) });

async function refusal(p: Promise<unknown>): Promise<RemoteMediaError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(RemoteMediaError);
  return e as RemoteMediaError;
}

describe('fetchRemoteMedia', () => {
  test('refuses a private address before connecting', async () => {
    // 10.0.0.1 is refused by the address check; a connection attempt would hang or fail as network.
    const e = await refusal(fetchRemoteMedia('http://10.0.0.1/x.png', opts('https://api.example.com/v1')));
    expect(e.code).toBe('refused_address');
  });

  test('refuses loopback when the provider lives on another host', async () => {
    const before = hits;
    const e = await refusal(fetchRemoteMedia(`${origin}/x.png`, opts('https://api.example.com/v1')));
    expect(e.code).toBe('refused_address');
    expect(hits).toBe(before);
  });

  test('refuses a name that resolves to loopback', async () => {
    const e = await refusal(fetchRemoteMedia(`http://localhost:${new URL(origin).port}/x.png`, opts()));
    expect(e.code).toBe('refused_address');
  });

  test('fetches from loopback when the provider itself is on that host', async () => {
    const { bytes, contentType } = await fetchRemoteMedia(`${origin}/x.png`, opts(`${origin}/v1`));
    expect(contentType).toBe('image/png');
    expect(bytes.equals(png)).toBe(true);
  });

  test('a redirect to a private address is refused at the hop', async () => {
    const e = await refusal(fetchRemoteMedia(`${origin}/redirect-to-private`, opts(`${origin}/v1`)));
    expect(e.code).toBe('refused_address');
  });

  test('more bytes than allowed is refused', async () => {
    const e = await refusal(fetchRemoteMedia(`${origin}/big.png`, { ...opts(`${origin}/v1`), maxBytes: 1000 }));
    expect(e.code).toBe('too_large');
  });

  test.each(['file:///etc/passwd', 'ftp://example.com/x.png', 'http://user:pw@example.com/x.png', 'not a url'])('refuses %s', async (url) => {
    const e = await refusal(fetchRemoteMedia(url, opts()));
    expect(e.code).toBe('bad_url');
  });
});

describe('isNonPublicAddress', () => {
  test.each([
    ['10.0.0.1', true], ['127.0.0.1', true], ['169.254.169.254', true], ['172.16.5.4', true], ['192.168.1.1', true], ['100.64.0.1', true], ['0.0.0.0', true],
    ['::1', true], ['::', true], ['fe80::1', true], ['fc00::1', true], ['fd12:3456::1', true], ['::ffff:10.0.0.1', true], ['::ffff:a00:1', true],
    ['::ffff:127.0.0.1', true], ['64:ff9b::a9fe:a9fe', true], ['2002:0a00:0001::1', true],
    ['8.8.8.8', false], ['1.1.1.1', false], ['2606:4700:4700::1111', false], ['::ffff:8.8.8.8', false], ['2002:0808:0808::1', false],
  ])('%s → %s', (address, expected) => {
    expect(isNonPublicAddress(address)).toBe(expected);
  });
});
