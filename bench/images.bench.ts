/**
 * The image stage's costs on this machine:
 * - the offline image model: images per second and peak RSS for 8 and 64 shots (720×1280, the
 *   stage's concurrency of 3, thumbnail included — what a shot's task does besides the database);
 * - a vendor image: the studio's CPU per image against the simulated upstream (OpenAI shape, run in a
 *   child process so its own CPU is not counted): the request, the download through fetchRemoteMedia,
 *   the hash and the thumbnail.
 *
 *   node --import tsx bench/images.bench.ts
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { fetchRemoteMedia } from '../apps/server/src/media/fetch-remote.ts';
import { imageAdapterFor } from '../apps/server/src/providers/media/image-adapter.ts';
import { renderOfflineImage } from '../apps/server/src/providers/offline/image-renderer.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const WORDS = ['雨夜的城市', '黄昏的海边', '清晨的森林', '雪夜的小屋', '满天星星', '灯塔', '山峰与云', '花园里的猫'];
const SIZE = { width: 720, height: 1280 };
const CONCURRENCY = 3;

const thumbnail = (bytes: Buffer) => sharp(bytes).resize(320, 320, { fit: 'inside' }).webp({ quality: 72 }).toBuffer();

async function offline(shots: number) {
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const limit = pLimit(CONCURRENCY);
  const started = performance.now();
  const cpu = process.cpuUsage();
  await Promise.all(
    Array.from({ length: shots }, (_, i) =>
      limit(async () => {
        const png = await renderOfflineImage({ scene: `镜头${i + 1}：${WORDS[i % WORDS.length]}`, narration: `第 ${i + 1} 段旁白`, prompt: WORDS[(i * 3) % WORDS.length], ...SIZE });
        createHash('sha256').update(png).digest('hex');
        await thumbnail(png);
      }),
    ),
  );
  const wallS = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  return { shots, wallS, perS: shots / wallS, cpuMsPerImage: (used.user + used.system) / 1000 / shots, peakRssMb: peak / 1024 / 1024 };
}

async function startUpstreamChild(): Promise<{ url: string; stop(): void }> {
  const script = "import { startFakeImage } from './tools/fake-media/src/image/index.ts'; const s = await startFakeImage(); console.log(s.url);";
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()));
    child.once('exit', (code) => reject(new Error(`the simulated upstream exited (${code})`)));
  });
  return { url, stop: () => child.kill('SIGKILL') };
}

async function vendor(images: number) {
  const upstream = await startUpstreamChild();
  try {
    const provider = { api_url: `${upstream.url}/v1`, api_key: 'bench', model_name: 'doubao-seedream-3-0-t2i', timeout_s: 60 };
    const adapter = imageAdapterFor('openai');
    const signal = new AbortController().signal;
    const one = async (i: number) => {
      const { images: got } = await adapter.generate(provider, { prompt: `${WORDS[i % WORDS.length]} #${i}`, ...SIZE, n: 1 }, { signal });
      for (const g of got) {
        const bytes = 'b64' in g ? Buffer.from(g.b64, 'base64') : (await fetchRemoteMedia(g.url, { allowHostOf: provider.api_url, maxBytes: 20 * 1024 * 1024, signal })).bytes;
        createHash('sha256').update(bytes).digest('hex');
        await thumbnail(bytes);
      }
    };
    await one(-1); // warm-up: module loading and the first connection are not per-image costs
    const limit = pLimit(CONCURRENCY);
    const started = performance.now();
    const cpu = process.cpuUsage();
    await Promise.all(Array.from({ length: images }, (_, i) => limit(() => one(i))));
    const used = process.cpuUsage(cpu);
    const wallS = (performance.now() - started) / 1000;
    return { images, wallS, perS: images / wallS, cpuMsPerImage: (used.user + used.system) / 1000 / images };
  } finally {
    upstream.stop();
  }
}

const fmt = (n: number, d = 1) => n.toFixed(d);
console.log(`Offline image model, ${SIZE.width}×${SIZE.height}, concurrency ${CONCURRENCY} (render + hash + thumbnail):`);
console.log('shots  wall s  images/s  CPU ms/image  peak RSS MB');
for (const n of [8, 64]) {
  const r = await offline(n);
  console.log(`${String(n).padStart(5)}  ${fmt(r.wallS).padStart(6)}  ${fmt(r.perS, 2).padStart(8)}  ${fmt(r.cpuMsPerImage, 0).padStart(12)}  ${fmt(r.peakRssMb, 0).padStart(11)}`);
}
const v = await vendor(32);
console.log(`\nSimulated vendor (OpenAI shape, upstream in another process), ${v.images} images at ${SIZE.width}×${SIZE.height}:`);
console.log(`wall ${fmt(v.wallS)} s, ${fmt(v.perS, 2)} images/s, studio CPU ${fmt(v.cpuMsPerImage, 0)} ms per image (request + download + hash + thumbnail)`);
