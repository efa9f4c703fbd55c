import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { synthesizeEspeak } from '../providers/offline/espeak.ts';
import { assembleShotAudio, measureDuration, parseLoudnormJson, type AssembledAudio, type SentenceTiming } from './audio.ts';
import { run } from './exec.ts';

// Real espeak-ng and ffmpeg; short sentences without commas so the only long silences in the
// assembled file are the pauses between sentences.
const TEXTS = ['今天天气很好。', '我们一起去公园散步吧！', '你觉得怎么样？'];
const PAUSE_S = 0.5;

let dir: string;
let speech: Buffer[];
/** The three sentences assembled with no locked length (shared: the machine is slow and shared). */
let free: AssembledAudio;
let freeFile: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'narration-test-'));
  // Faster speech keeps the files short; the pauses stay long enough to be found by silencedetect.
  speech = await Promise.all(TEXTS.map((text) => synthesizeEspeak({ text, speed: 1.5 })));
  freeFile = path.join(dir, 'shot.wav');
  free = await assembleShotAudio({ sentences: TEXTS.map((text, i) => ({ text, audio: speech[i] })), pauseS: PAUSE_S, out: freeFile });
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function probe(file: string) {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type,codec_name,sample_rate,channels', '-of', 'json', file]);
  return JSON.parse(stdout.toString()).streams as { codec_type: string; codec_name: string; sample_rate: string; channels: number }[];
}

/** Ends of the silences ffmpeg's silencedetect finds (at least `minS` long). */
async function silenceEnds(file: string, minS: number): Promise<number[]> {
  const { stderr } = await run('ffmpeg', ['-hide_banner', '-nostats', '-i', file, '-af', `silencedetect=noise=-45dB:d=${minS}`, '-f', 'null', '-']);
  return [...stderr.matchAll(/silence_end: ([\d.]+)/g)].map((m) => Number(m[1]));
}

async function integratedLoudness(file: string): Promise<number> {
  const { stderr } = await run('ffmpeg', ['-hide_banner', '-nostats', '-i', file, '-af', 'loudnorm=print_format=json', '-f', 'null', '-']);
  return Number(parseLoudnormJson(stderr)!.input_i);
}

function expectOrderedInside(timings: SentenceTiming[], duration: number) {
  let previousEnd = 0;
  for (const t of timings) {
    expect(t.start_s).toBeGreaterThanOrEqual(previousEnd);
    expect(t.end_s).toBeGreaterThan(t.start_s);
    expect(t.end_s).toBeLessThanOrEqual(duration + 1e-6);
    previousEnd = t.end_s;
  }
}

async function expectStartsAtSpeech(file: string, timings: SentenceTiming[]) {
  // The gaps are silences: where each ends, the next sentence's speech begins.
  const ends = await silenceEnds(file, 0.3);
  for (const t of timings.slice(1)) {
    const nearest = Math.min(...ends.map((e) => Math.abs(e - t.start_s)));
    expect(nearest, `sentence "${t.text}" at ${t.start_s}s; silences end at ${ends.join(', ')}`).toBeLessThan(0.1);
  }
  // No leading silence: the first sentence starts at 0 with speech.
  const leading = await silenceEnds(file, 0.05);
  expect(leading.every((e) => e > 0.1 || e === 0)).toBe(true);
}

describe('assembleShotAudio (real espeak-ng + ffmpeg)', { timeout: 60_000 }, () => {
  test('joins Chinese sentences into one 48 kHz mono WAV with measured sentence times that match the speech', async () => {
    const out = freeFile;
    const result = free;

    const streams = await probe(out);
    expect(streams).toEqual([{ codec_type: 'audio', codec_name: 'pcm_s16le', sample_rate: '48000', channels: 1 }]);
    expect(result.duration_s).toBeGreaterThan(1);
    expect(result.duration_s).toBeCloseTo(await measureDuration(out), 6);
    expect(result.tempo).toBe(1);
    expect(result.sentences.map((s) => s.text)).toEqual(TEXTS);
    expectOrderedInside(result.sentences, result.duration_s);
    expect(result.sentences[0].start_s).toBe(0);
    // The gaps are exactly the pause.
    for (let i = 1; i < TEXTS.length; i++) {
      expect(result.sentences[i].start_s - result.sentences[i - 1].end_s).toBeCloseTo(PAUSE_S, 2);
    }
    // The last sentence ends with the file (trailing silence trimmed, no pause after it).
    expect(result.sentences.at(-1)!.end_s).toBeCloseTo(result.duration_s, 1);
    await expectStartsAtSpeech(out, result.sentences);
  });

  test('a locked shot length is met within a frame with atempo, and the times still match the speech', async () => {
    const target = Math.round(free.duration_s * 0.8 * 100) / 100;
    const out = path.join(dir, 'locked.wav');
    const fitted = await assembleShotAudio({ sentences: TEXTS.map((text, i) => ({ text, audio: speech[i] })), pauseS: PAUSE_S, out, targetDurationS: target });

    expect(Math.abs(fitted.duration_s - target)).toBeLessThan(1 / 30);
    expect(fitted.tempo).toBeCloseTo(free.duration_s / target, 2);
    expectOrderedInside(fitted.sentences, fitted.duration_s);
    await expectStartsAtSpeech(out, fitted.sentences);
  });

  test('a locked length longer than the speech is padded with silence, not slowed below 0.9×', async () => {
    const out = path.join(dir, 'padded.wav');
    const one = await assembleShotAudio({ sentences: [{ text: TEXTS[0], audio: speech[0] }], out, targetDurationS: 4 });
    expect(one.tempo).toBe(0.9);
    expect(Math.abs(one.duration_s - 4)).toBeLessThan(1 / 30);
    expect(one.sentences[0].end_s).toBeLessThan(3);
  });

  test('shots recorded at different levels come out at the same loudness (-16 LUFS)', async () => {
    const quietIn = path.join(dir, 'quiet-in.wav');
    const loudIn = path.join(dir, 'loud-in.wav');
    await writeFile(path.join(dir, 'src.wav'), speech[1]);
    await run('ffmpeg', ['-v', 'error', '-y', '-i', path.join(dir, 'src.wav'), '-af', 'volume=-20dB', quietIn]);
    await run('ffmpeg', ['-v', 'error', '-y', '-i', path.join(dir, 'src.wav'), '-af', 'volume=-1dB', loudIn]);
    expect(Math.abs((await integratedLoudness(quietIn)) - (await integratedLoudness(loudIn)))).toBeGreaterThan(15);

    const quietOut = path.join(dir, 'quiet-out.wav');
    const loudOut = path.join(dir, 'loud-out.wav');
    await assembleShotAudio({ sentences: [{ text: TEXTS[1], audio: quietIn }], out: quietOut });
    await assembleShotAudio({ sentences: [{ text: TEXTS[1], audio: loudIn }], out: loudOut });
    const q = await integratedLoudness(quietOut);
    const l = await integratedLoudness(loudOut);
    expect(Math.abs(q - -16)).toBeLessThan(1.5);
    expect(Math.abs(l - -16)).toBeLessThan(1.5);
    // Inputs 19 dB apart come out matched.
    expect(Math.abs(q - l)).toBeLessThan(0.5);
  });

  test('a sentence of punctuation only takes no time and breaks nothing', async () => {
    const silent = await synthesizeEspeak({ text: '……' });
    const out = path.join(dir, 'with-silent.wav');
    const result = await assembleShotAudio({
      sentences: [{ text: TEXTS[0], audio: speech[0] }, { text: '……', audio: silent }, { text: TEXTS[2], audio: speech[2] }],
      pauseS: PAUSE_S,
      out,
    });
    expectOrderedInside(result.sentences.filter((s) => s.end_s > s.start_s), result.duration_s);
    expect(result.sentences[2].start_s - result.sentences[0].end_s).toBeCloseTo(PAUSE_S, 2);
    await expectStartsAtSpeech(out, [result.sentences[0], result.sentences[2]]);
  });

  test('an abort stops the work', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(
      assembleShotAudio({ sentences: [{ text: TEXTS[0], audio: speech[0] }], out: path.join(dir, 'never.wav'), signal: controller.signal }),
    ).rejects.toMatchObject({ reason: 'aborted' });
  });
});
