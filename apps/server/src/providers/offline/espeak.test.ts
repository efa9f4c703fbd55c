import { describe, expect, test } from 'vitest';
import { espeakWordsPerMinute, listEspeakVoices, synthesizeEspeak } from './espeak.ts';

function wavInfo(wav: Buffer) {
  expect(wav.subarray(0, 4).toString('ascii')).toBe('RIFF');
  expect(wav.subarray(8, 12).toString('ascii')).toBe('WAVE');
  const sampleRate = wav.readUInt32LE(24);
  const byteRate = wav.readUInt32LE(28);
  const dataSize = wav.readUInt32LE(40);
  return { sampleRate, riffSize: wav.readUInt32LE(4), dataSize, seconds: dataSize / byteRate };
}

describe('espeak-ng (offline, simulated voice)', () => {
  test('speaks Mandarin into a WAV whose header sizes are real', async () => {
    const wav = await synthesizeEspeak({ text: '你好，世界。' });
    const info = wavInfo(wav);
    expect(info.sampleRate).toBe(22050);
    expect(info.riffSize).toBe(wav.length - 8);
    expect(info.dataSize).toBe(wav.length - 44);
    expect(info.seconds).toBeGreaterThan(0.3);
  });

  test('a faster speed gives shorter speech', async () => {
    const text = '今天我们去公园散步，看见了很多花。';
    const normal = wavInfo(await synthesizeEspeak({ text, speed: 1 })).seconds;
    const fast = wavInfo(await synthesizeEspeak({ text, speed: 2 })).seconds;
    expect(fast).toBeLessThan(normal * 0.75);
  });

  test('text starting with a dash is spoken, not parsed as an option', async () => {
    const wav = await synthesizeEspeak({ text: '-h 你好' });
    expect(wavInfo(wav).seconds).toBeGreaterThan(0.2);
  });

  test('an abort kills the process and rejects', async () => {
    const controller = new AbortController();
    const long = '这是一段很长的文字。'.repeat(400);
    const promise = synthesizeEspeak({ text: long, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await expect(promise).rejects.toMatchObject({ reason: 'aborted' });
  });

  test('speed outside 0.5..2 is refused; wpm follows speed', () => {
    expect(espeakWordsPerMinute(1)).toBe(175);
    expect(espeakWordsPerMinute(2)).toBe(350);
    expect(() => espeakWordsPerMinute(3)).toThrow(RangeError);
  });

  test('lists the Mandarin voice', async () => {
    const voices = await listEspeakVoices('cmn');
    expect(voices.map((v) => v.language)).toContain('cmn');
  });
});
