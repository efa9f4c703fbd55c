import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { defaultTools, run } from '../../narration/exec.ts';

/**
 * The offline voice: Debian's espeak-ng (1.51), Mandarin by default. It is a SIMULATED narrator —
 * robotic, for trying the pipeline with no key and no network; callers label it so (DESIGN §9).
 * Reference: espeak-ng(1) — `-v` voice, `-s` words per minute (default 175), `-b 1` UTF-8 input,
 * `-w` WAV output file.
 */
export interface EspeakRequest {
  text: string;
  /** An espeak-ng voice name; `cmn` is Mandarin with Latin letters read as English. */
  voice?: string;
  /** 0.5..2, 1 = espeak's normal rate. */
  speed?: number;
  signal?: AbortSignal;
  timeoutMs?: number;
  espeakPath?: string;
}

const NORMAL_WPM = 175;
// espeak-ng accepts 80..~450 wpm; outside that it clamps silently, so say so here instead.
const MIN_WPM = 80;
const MAX_WPM = 450;

export function espeakWordsPerMinute(speed = 1): number {
  if (!Number.isFinite(speed) || speed < 0.5 || speed > 2) throw new RangeError(`speed must be between 0.5 and 2, got ${speed}`);
  return Math.min(MAX_WPM, Math.max(MIN_WPM, Math.round(NORMAL_WPM * speed)));
}

/** Returns a complete WAV file (22.05 kHz mono PCM, as espeak-ng writes it). */
export async function synthesizeEspeak(req: EspeakRequest): Promise<Buffer> {
  const text = req.text.trim();
  if (!text) throw new RangeError('nothing to say: the text is empty');
  const dir = await mkdtemp(path.join(tmpdir(), 'espeak-'));
  try {
    const out = path.join(dir, 'speech.wav');
    // `-w` rather than `--stdout`: on a pipe espeak-ng writes 0x7fffffff as the RIFF/data sizes,
    // which some readers reject; the file it writes has the real sizes. The text goes through stdin
    // so that a narration starting with "-" is never read as an option.
    await run(
      req.espeakPath ?? defaultTools.espeak,
      ['-v', req.voice ?? 'cmn', '-s', String(espeakWordsPerMinute(req.speed)), '-b', '1', '-w', out],
      { input: text, signal: req.signal, timeoutMs: req.timeoutMs ?? 60_000 },
    );
    return await readFile(out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface EspeakVoice {
  language: string;
  name: string;
  file: string;
}

/** Installed voices, optionally for one language (e.g. `cmn`, `en`). */
export async function listEspeakVoices(language?: string, espeakPath = defaultTools.espeak): Promise<EspeakVoice[]> {
  const { stdout } = await run(espeakPath, [language ? `--voices=${language}` : '--voices'], { timeoutMs: 10_000 });
  // Columns: Pty Language Age/Gender VoiceName File Other-languages (first line is the header).
  return stdout
    .toString('utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols.length >= 5)
    .map((cols) => ({ language: cols[1], name: cols[3], file: cols[4] }));
}
