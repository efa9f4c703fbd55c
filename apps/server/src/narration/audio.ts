import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { defaultTools, run, type MediaTools } from './exec.ts';

/**
 * A shot's narration track, assembled from per-sentence speech (DESIGN §9).
 *
 * Format: WAV, 48 kHz, mono, 16-bit PCM.
 * - 48 kHz is what the export's AAC track in MP4 uses, so the export resamples nothing;
 * - mono: one narrator; the export upmixes when it mixes music;
 * - PCM, not AAC: the export encodes once (no double lossy pass), and PCM has no encoder priming
 *   delay, so sentence times measured here stay exact in the file (AAC in .m4a shifts audio by its
 *   priming samples unless every reader honours the edit list). A 10 s shot is ~1 MB; fine.
 * - `-fflags +bitexact` and no metadata: the same input gives the same bytes, which the
 *   content-addressed media store turns into one file.
 *
 * Loudness, two passes (cheap: a few seconds of PCM): `loudnorm`'s EBU R128 meter measures the
 * integrated loudness, then one linear gain to the target (-16 LUFS by default) and a delay-
 * compensated peak limiter at -1.5 dBFS (`alimiter ... latency=true`, so sentence times do not move).
 * Not loudnorm's own second pass: when the peaks forbid a linear gain it falls back to dynamic mode,
 * which on speech shorter than ~3 s leaves the level where it was (measured: espeak at -44 LUFS came
 * out at -46). So every shot lands at the same loudness, short or long.
 */
export const NARRATION_SAMPLE_RATE = 48_000;
export const NARRATION_MIME = 'audio/wav';

/** Speed-ups beyond 2× become hard to follow; slowing below 0.9× sounds dragged — pad silence instead. */
export const MAX_TEMPO = 2;
export const MIN_TEMPO = 0.9;

/** Below this level (dBFS) a sentence's leading/trailing audio counts as silence and is trimmed. */
const SILENCE_THRESHOLD_DB = -50;
const TRUE_PEAK_DB = -1.5;

export interface ToolOptions {
  signal?: AbortSignal;
  tools?: Partial<MediaTools>;
}

export async function measureDuration(file: string, options: ToolOptions = {}): Promise<number> {
  const ffprobe = options.tools?.ffprobe ?? defaultTools.ffprobe;
  const { stdout } = await run(
    ffprobe,
    ['-v', 'error', '-show_entries', 'format=duration', '-of', 'default=noprint_wrappers=1:nokey=1', file],
    { signal: options.signal, timeoutMs: 30_000 },
  );
  const seconds = Number.parseFloat(stdout.toString('utf8').trim());
  if (!Number.isFinite(seconds)) throw new Error(`ffprobe found no duration in ${path.basename(file)}`);
  return seconds;
}

export interface SentenceAudio {
  text: string;
  /** The sentence's speech: file bytes (any format ffmpeg reads) or a path. */
  audio: Buffer | string;
}

export interface SentenceTiming {
  text: string;
  start_s: number;
  end_s: number;
}

export interface AssembleOptions extends ToolOptions {
  sentences: SentenceAudio[];
  /** Silence between two sentences, seconds. */
  pauseS?: number;
  /** Where to write the WAV. */
  out: string;
  /** The shot's locked length: speech is sped up (or slightly slowed) with atempo to fit, then padded. */
  targetDurationS?: number;
  loudnessLufs?: number;
}

export interface AssembledAudio {
  /** Measured on the written file. */
  duration_s: number;
  /** The atempo factor applied (1 when none). */
  tempo: number;
  sentences: SentenceTiming[];
}

const FFMPEG_QUIET = ['-hide_banner', '-nostdin', '-nostats', '-y'];
const PCM_OUT = ['-ar', String(NARRATION_SAMPLE_RATE), '-ac', '1', '-c:a', 'pcm_s16le', '-map_metadata', '-1', '-fflags', '+bitexact', '-f', 'wav'];

/**
 * Concatenates the sentences with a pause between them, fits a locked length, normalises loudness.
 * Every sentence's start and end come from its own trimmed audio's measured duration plus the
 * pauses (scaled by the tempo) — never from character counts.
 */
export async function assembleShotAudio(options: AssembleOptions): Promise<AssembledAudio> {
  const { sentences, pauseS = 0.3, out, targetDurationS, loudnessLufs = -16, signal } = options;
  if (sentences.length === 0) throw new RangeError('no sentences to assemble');
  if (!(pauseS >= 0)) throw new RangeError('pauseS must be zero or more');
  if (targetDurationS !== undefined && !(targetDurationS > 0)) throw new RangeError('targetDurationS must be positive');
  const ffmpeg = options.tools?.ffmpeg ?? defaultTools.ffmpeg;
  const dir = await mkdtemp(path.join(tmpdir(), 'narration-'));
  try {
    // 1. Each sentence to one format, with its leading and trailing silence removed so that its
    //    start is where speech starts. The reverse–trim–reverse pair trims the tail reliably.
    const trim = `silenceremove=start_periods=1:start_threshold=${SILENCE_THRESHOLD_DB}dB`;
    const durations: number[] = [];
    const parts: string[] = [];
    for (const [i, sentence] of sentences.entries()) {
      let input = sentence.audio;
      if (Buffer.isBuffer(input)) {
        input = path.join(dir, `in-${i}`);
        await writeFile(input, sentence.audio);
      }
      const part = path.join(dir, `sentence-${i}.wav`);
      await run(ffmpeg, [...FFMPEG_QUIET, '-v', 'error', '-i', input, '-vn', '-af',
        `aresample=${NARRATION_SAMPLE_RATE},aformat=channel_layouts=mono,${trim},areverse,${trim},areverse`, ...PCM_OUT, part],
        { signal, timeoutMs: 60_000 });
      // A sentence that was all silence (e.g. only punctuation) leaves no samples: it gets no time.
      const d = await measureDuration(part, options).catch(() => 0);
      durations.push(d);
      parts.push(part);
    }

    // 2. Times, from the measured durations. A sentence that was all silence (only punctuation)
    //    takes no time and no pause: it sits where the next sentence starts.
    const voiced = parts.map((p, i) => ({ p, i })).filter(({ i }) => durations[i] > 0);
    if (voiced.length === 0) throw new Error('the narration audio is silent');
    const natural = durations.reduce((a, b) => a + b, 0) + pauseS * (voiced.length - 1);
    let tempo = 1;
    if (targetDurationS !== undefined) tempo = Math.min(MAX_TEMPO, Math.max(MIN_TEMPO, natural / targetDurationS));
    const timings: SentenceTiming[] = [];
    let at = 0;
    let voicedSoFar = 0;
    for (const [i, sentence] of sentences.entries()) {
      if (durations[i] > 0 && voicedSoFar++ > 0) at += pauseS;
      const start = at / tempo;
      at += durations[i];
      timings.push({ text: sentence.text, start_s: round(start), end_s: round(at / tempo) });
    }

    // 3. One filter graph: pad each voiced sentence but the last with the pause, concatenate, fit.
    const inputs = voiced.flatMap(({ p }) => ['-i', p]);
    const chains = voiced.map((_, k) => `[${k}:a]${k === voiced.length - 1 || pauseS === 0 ? 'anull' : `apad=pad_dur=${pauseS}`}[s${k}]`);
    let graph = `${chains.join(';')};${voiced.map((_, k) => `[s${k}]`).join('')}concat=n=${voiced.length}:v=0:a=1`;
    if (tempo !== 1) graph += `,atempo=${tempo.toFixed(6)}`;
    if (targetDurationS !== undefined && natural / tempo <= targetDurationS + 0.1) {
      // atempo rounds to its internal frame size; pad and cut to the exact sample count. The cut
      // only ever removes atempo's overshoot (milliseconds), never speech that did not fit.
      graph += `,apad=whole_dur=${targetDurationS},atrim=end_sample=${Math.round(targetDurationS * NARRATION_SAMPLE_RATE)}`;
    }
    const joined = path.join(dir, 'joined.wav');
    await run(ffmpeg, [...FFMPEG_QUIET, '-v', 'error', ...inputs, '-filter_complex', graph, ...PCM_OUT, joined], { signal, timeoutMs: 120_000 });

    // 4. Loudness, two passes: measure, then one gain and a peak limiter.
    const measure = await run(ffmpeg, [...FFMPEG_QUIET, '-v', 'info', '-i', joined, '-af', `loudnorm=I=${loudnessLufs}:TP=${TRUE_PEAK_DB}:LRA=11:print_format=json`, '-f', 'null', '-'], { signal, timeoutMs: 120_000 });
    const inputI = Number(parseLoudnormJson(measure.stderr)?.input_i);
    const finalFilter = Number.isFinite(inputI)
      ? `volume=${(loudnessLufs - inputI).toFixed(2)}dB,alimiter=limit=${10 ** (TRUE_PEAK_DB / 20)}:level=false:latency=true`
      : 'anull'; // -inf: digital silence, nothing to normalise.
    await run(ffmpeg, [...FFMPEG_QUIET, '-v', 'error', '-i', joined, '-af', finalFilter, ...PCM_OUT, out], { signal, timeoutMs: 120_000 });

    const duration_s = await measureDuration(out, options);
    // Keep every time inside the file (rounding to ms must not pass its end).
    const last = Math.floor(duration_s * 1000) / 1000;
    for (const t of timings) {
      t.end_s = Math.min(t.end_s, last);
      t.start_s = Math.min(t.start_s, t.end_s);
    }
    return { duration_s, tempo, sentences: timings };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface LoudnormMeasurement {
  input_i: string;
  input_tp: string;
  input_lra: string;
  input_thresh: string;
  target_offset: string;
}

/** loudnorm prints its measurement as the last JSON object on stderr. */
export function parseLoudnormJson(stderr: string): LoudnormMeasurement | null {
  const end = stderr.lastIndexOf('}');
  const start = stderr.lastIndexOf('{', end);
  if (start < 0 || end < 0) return null;
  try {
    return JSON.parse(stderr.slice(start, end + 1)) as LoudnormMeasurement;
  } catch {
    return null;
  }
}

const round = (s: number) => Math.round(s * 1000) / 1000;
