import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runTool } from '../av-tools.ts';

export const SPEECH_FORMATS = ['mp3', 'wav', 'opus', 'aac', 'flac', 'pcm'] as const;
export type SpeechFormat = (typeof SPEECH_FORMATS)[number];

/** What OpenAI answers in `Content-Type` for each `response_format`. */
export const SPEECH_MIME: Record<SpeechFormat, string> = {
  mp3: 'audio/mpeg',
  wav: 'audio/wav',
  opus: 'audio/ogg',
  aac: 'audio/aac',
  flac: 'audio/flac',
  pcm: 'audio/pcm',
};

// OpenAI's `pcm` is raw 24 kHz 16-bit signed little-endian mono; the other formats use the same rate.
const SAMPLE_RATE = 24_000;

const CODEC_ARGS: Record<SpeechFormat, string[]> = {
  mp3: ['-c:a', 'libmp3lame', '-b:a', '64k', '-f', 'mp3'],
  wav: ['-c:a', 'pcm_s16le', '-f', 'wav'],
  opus: ['-c:a', 'libopus', '-b:a', '32k', '-f', 'ogg'],
  aac: ['-c:a', 'aac', '-b:a', '64k', '-f', 'adts'],
  flac: ['-c:a', 'flac', '-f', 'flac'],
  pcm: ['-c:a', 'pcm_s16le', '-f', 's16le'],
};

// The OpenAI voices, each given a distinct espeak-ng variant so that a voice choice is audible.
const VOICE_VARIANT: Record<string, string> = {
  alloy: '',
  ash: '+m3',
  ballad: '+m5',
  coral: '+f2',
  echo: '+m1',
  fable: '+m7',
  nova: '+f3',
  onyx: '+m2',
  sage: '+f4',
  shimmer: '+f1',
  verse: '+m4',
};
export const SPEECH_VOICES = Object.keys(VOICE_VARIANT);

export interface SynthesizeOptions {
  ffmpegPath?: string;
  espeakPath?: string;
  signal?: AbortSignal;
}

/** Real Mandarin speech from espeak-ng (`cmn`), transcoded by ffmpeg into the requested format. */
export async function synthesizeSpeech(
  text: string,
  voice: string,
  speed: number,
  format: SpeechFormat,
  options: SynthesizeOptions = {},
): Promise<Buffer> {
  const { ffmpegPath = 'ffmpeg', espeakPath = 'espeak-ng', signal } = options;
  // espeak-ng speaks ~175 words per minute by default; OpenAI's speed is a multiplier (0.25–4).
  const wordsPerMinute = String(Math.round(Math.min(450, Math.max(80, 175 * speed))));
  // Text goes through stdin so that a leading '-' can never be read as an option.
  const wav = await runTool(espeakPath, ['-v', `cmn${VOICE_VARIANT[voice] ?? ''}`, '-s', wordsPerMinute, '--stdin', '--stdout'], {
    input: text,
    timeoutMs: 30_000,
    signal,
  });
  // Into a file, not a pipe: FLAC's STREAMINFO and MP3's Xing header are written by seeking back, and
  // without them a reader cannot tell the duration (the vendors send complete files).
  const dir = await mkdtemp(path.join(tmpdir(), 'fake-speech-'));
  try {
    const out = path.join(dir, `speech.${format}`);
    await runTool(
      ffmpegPath,
      ['-hide_banner', '-loglevel', 'error', '-f', 'wav', '-i', 'pipe:0', '-ac', '1', '-ar', String(SAMPLE_RATE), ...CODEC_ARGS[format], '-y', out],
      { input: wav, timeoutMs: 30_000, signal },
    );
    return await readFile(out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
