/**
 * Fetches a vendor's media URL at once (they expire: OpenAI's in 1 h, DashScope's in 24 h) and safely:
 * the URL comes from a remote answer, so it must not be a way into this machine's network (SSRF).
 * Every address the host resolves to is checked — IPv4 and IPv6 — before connecting, and the
 * connection goes to the address that was checked (no second lookup a rebinding DNS could answer
 * differently). Private, loopback, link-local and other non-public addresses are refused unless the
 * URL's host is the provider's own `api_url` host (a self-hosted or simulated vendor on 127.0.0.1).
 * The bytes must be an image, video or audio by their content (file-type), whatever the headers say.
 */
import { lookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { fileTypeFromBuffer } from 'file-type';

export interface FetchRemoteOptions {
  /** The provider's api_url: URLs on its host may be private (simulated and self-hosted vendors). */
  allowHostOf?: string;
  maxBytes: number;
  signal: AbortSignal;
  /** Whole fetch, headers to last byte. */
  timeoutMs?: number;
}

export type RemoteMediaErrorCode = 'bad_url' | 'refused_address' | 'http_status' | 'too_large' | 'not_media' | 'network' | 'timeout' | 'cancelled';

export class RemoteMediaError extends Error {
  readonly code: RemoteMediaErrorCode;
  readonly status?: number;
  constructor(code: RemoteMediaErrorCode, message: string, status?: number) {
    super(message);
    this.name = 'RemoteMediaError';
    this.code = code;
    if (status !== undefined) this.status = status;
  }
}

const MAX_REDIRECTS = 3;
const DEFAULT_TIMEOUT_MS = 60_000;

// Not reachable from the public internet, or not meant to be: RFC 6890 special-purpose blocks.
const blocked = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24],
  ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) blocked.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8], ['2001:db8::', 32], ['100::', 64],
] as const) blocked.addSubnet(net, prefix, 'ipv6');

/** True when the address is not a public unicast one. IPv4 inside IPv6 (mapped, NAT64, 6to4) is judged as IPv4. */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, 'ipv4');
  if (family !== 6) return true;
  const embedded = embeddedIpv4(address);
  if (embedded) return blocked.check(embedded, 'ipv4');
  return blocked.check(address, 'ipv6');
}

function embeddedIpv4(address: string): string | undefined {
  const groups = expandIpv6(address);
  if (!groups) return undefined;
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  const zeros = (from: number, to: number) => groups.slice(from, to).every((g) => g === 0);
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated)
  if (zeros(0, 5) && (groups[5] === 0xffff || groups[5] === 0)) return v4(groups[6], groups[7]);
  // 64:ff9b::a.b.c.d (NAT64 well-known prefix)
  if (groups[0] === 0x64 && groups[1] === 0xff9b && zeros(2, 6)) return v4(groups[6], groups[7]);
  // 2002:aabb:ccdd::/48 (6to4)
  if (groups[0] === 0x2002) return v4(groups[1], groups[2]);
  return undefined;
}

function expandIpv6(address: string): number[] | undefined {
  let text = address.toLowerCase().replace(/%.*$/, '');
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted[1].split('.').map(Number);
    text = text.slice(0, dotted.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const parse = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = parse(head);
  const t = parse(tail);
  const groups = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

function bareHost(hostname: string): string {
  return hostname.replace(/^\[|\]$/g, '').toLowerCase();
}

function sameHost(url: URL, allowHostOf: string | undefined): boolean {
  if (!allowHostOf) return false;
  try {
    return bareHost(new URL(allowHostOf).hostname) === bareHost(url.hostname);
  } catch {
    return false;
  }
}

/** The addresses to connect to, every one checked; throws before any connection is made. */
async function vetHost(url: URL, allowHostOf: string | undefined): Promise<{ address: string; family: 4 | 6 }> {
  const host = bareHost(url.hostname);
  let addresses: { address: string; family: number }[];
  if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
  else {
    try {
      addresses = await lookup(host, { all: true, verbatim: true });
    } catch (e) {
      throw new RemoteMediaError('network', `The host ${host} could not be resolved (${(e as { code?: string }).code ?? 'DNS error'}).`);
    }
  }
  if (addresses.length === 0) throw new RemoteMediaError('network', `The host ${host} has no address.`);
  if (!sameHost(url, allowHostOf)) {
    const bad = addresses.find((a) => isNonPublicAddress(a.address));
    if (bad) throw new RemoteMediaError('refused_address', `Refused to fetch ${url.host}: it resolves to a private or local address (${bad.address}).`);
  }
  const first = addresses[0];
  return { address: first.address, family: first.family === 6 ? 6 : 4 };
}

export async function fetchRemoteMedia(url: string, options: FetchRemoteOptions): Promise<{ bytes: Buffer; contentType: string }> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const signal = AbortSignal.any([options.signal, timeout]);
  let current: URL;
  try {
    current = new URL(url);
  } catch {
    throw new RemoteMediaError('bad_url', 'Not a URL.');
  }
  for (let hop = 0; ; hop++) {
    if (current.protocol !== 'http:' && current.protocol !== 'https:') throw new RemoteMediaError('bad_url', `Only http and https URLs are fetched, not ${current.protocol}`);
    if (current.username || current.password) throw new RemoteMediaError('bad_url', 'URLs with credentials are not fetched.');
    if (signal.aborted) throw abortError(options.signal);
    const target = await vetHost(current, options.allowHostOf);
    const answer = await get(current, target, options.maxBytes, signal).catch((e: unknown) => {
      if (signal.aborted) throw abortError(options.signal);
      throw e;
    });
    if ('redirect' in answer) {
      if (hop >= MAX_REDIRECTS) throw new RemoteMediaError('http_status', `Too many redirects fetching ${current.host}.`);
      // Each hop is vetted again: a public URL may redirect to a private one.
      current = new URL(answer.redirect, current);
      continue;
    }
    const type = await fileTypeFromBuffer(answer.bytes);
    if (!type || !/^(image|video|audio)\//.test(type.mime)) {
      const looksHtml = /^\s*<(!doctype|html|head|body|\?xml)/i.test(answer.bytes.subarray(0, 200).toString('utf8'));
      throw new RemoteMediaError('not_media', `${current.host} sent ${looksHtml ? 'a web page' : type ? type.mime : 'unrecognised bytes'} (labelled ${answer.contentType || 'nothing'}), not an image, video or audio file.`);
    }
    return { bytes: answer.bytes, contentType: type.mime };
  }
}

function abortError(caller: AbortSignal): RemoteMediaError {
  return caller.aborted ? new RemoteMediaError('cancelled', 'Cancelled.') : new RemoteMediaError('timeout', 'The download took too long.');
}

function get(url: URL, target: { address: string; family: 4 | 6 }, maxBytes: number, signal: AbortSignal): Promise<{ bytes: Buffer; contentType: string } | { redirect: string }> {
  // Connect to the vetted address whatever a second lookup would say (DNS rebinding).
  const pinned: LookupFunction = (_host, opts, callback) => {
    if ((opts as { all?: boolean }).all) (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [target]);
    else callback(null, target.address, target.family);
  };
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.get(url, { lookup: pinned, signal, headers: { accept: 'image/*, video/*, audio/*;q=0.9, */*;q=0.1' } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        return resolve({ redirect: res.headers.location });
      }
      if (status < 200 || status >= 300) {
        res.resume();
        const hint = status === 403 || status === 404 || status === 410 ? ' (vendor links expire; it may have)' : '';
        return reject(new RemoteMediaError('http_status', `${url.host} answered HTTP ${status}${hint}.`, status));
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) {
        res.destroy();
        return reject(new RemoteMediaError('too_large', `The file is ${declared} bytes; at most ${maxBytes} are accepted.`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) {
          res.destroy();
          reject(new RemoteMediaError('too_large', `The file is over ${maxBytes} bytes.`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => resolve({ bytes: Buffer.concat(chunks), contentType: String(res.headers['content-type'] ?? '') }));
      res.on('error', (e) => reject(new RemoteMediaError('network', `The download from ${url.host} broke: ${e.message}`)));
    });
    req.on('error', (e) => reject(e instanceof RemoteMediaError ? e : new RemoteMediaError('network', `${url.host} could not be reached: ${e.message}`)));
  });
}
