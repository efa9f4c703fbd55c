import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startFakeLlm } from '@ai-story/fake-llm';
import { startFakeSpeech, type FakeSpeechServer } from '@ai-story/fake-media/speech/server.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../src/narration/exec.ts';
import { lineWidth, maxLineWidth, parseAss, parseSrt } from '../src/narration/subtitles.ts';
import { testMediaStage } from './fixtures/test-media-stage.ts';
import { setupAdmin, startStudio, type Client, type TestStudio } from './helpers.ts';
import { follow, type ReceivedEvent } from './sse-client.ts';

/** Chinese with no spaces, so a shot's subtitle lines joined give back its narration exactly. */
const SHOTS = [
  '雨夜里，一只橘猫在街角发抖。小女孩撑着红伞走来。',
  '她蹲下身子，轻轻把猫抱进怀里。',
  '第二天清晨，阳光照进窗台，小猫睡得正香。',
];
const PAUSE_S = 0.3;
const MIN_SHOT_S = 1;
const MAX_SHOT_S = 20;

interface Sentence {
  text: string;
  start_s: number;
  end_s: number;
  media_id: string;
}
interface Item {
  shot_id: string;
  media_id: string;
  url: string;
  duration_s: number;
  voice: string;
  sentences: Sentence[];
  shot_duration_s: number | null;
}
interface ShotOut {
  id: string;
  narration_text: string;
  duration_seconds: number;
  duration_locked: boolean;
  speaker: string | null;
}

const ofType = (events: ReceivedEvent[], type: string) => events.filter((e) => e.data.type === type);

// A video stage stand-in (the clip stage is built elsewhere): proves which shots' clips a narration run makes stale.
const testVideoStage = { ...testMediaStage, key: 'video' as const, itemEvent: 'clip' as const };

// Real speech and ffmpeg on a shared 2-core machine: generous bounds, never asserted as timings.
const SLOW = 180_000;

describe(`the narration stage: speech per shot, sentence timings, shot lengths and subtitles (${process.env.TEST_DB ?? 'pglite'})`, () => {
  let studio: TestStudio;
  let admin: Client;
  let speech: FakeSpeechServer;
  let work: string;

  beforeAll(async () => {
    studio = await startStudio({}, undefined, undefined, { stages: { video: testVideoStage } });
    admin = await setupAdmin(studio);
    speech = await startFakeSpeech();
    work = await mkdtemp(path.join(tmpdir(), 'narration-test-'));
  }, SLOW);
  afterAll(async () => {
    await studio?.close();
    await speech?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** A project whose shots are added by hand (no LLM), the last one's length locked at `lockedS`. */
  const newProject = async (name: string, lockedS: number) => {
    const id = (await admin.post('/api/v1/projects/', { name, original_topic: SHOTS.join('') })).body.id as string;
    expect((await admin.patch(`/api/v1/projects/${id}/`, { min_shot_s: MIN_SHOT_S, max_shot_s: MAX_SHOT_S })).status).toBe(200);
    expect((await admin.patch(`/api/v1/projects/${id}/stages/narration/settings/`, { pause_s: PAUSE_S })).status).toBe(200);
    for (const text of SHOTS) expect((await admin.post(`/api/v1/projects/${id}/storyboards/`, { narration_text: text, scene_description: text, duration_seconds: 3 })).status).toBe(201);
    const shots = await shotsOf(id);
    expect((await admin.patch(`/api/v1/storyboards/${shots[2].id}/`, { duration_seconds: lockedS })).body.duration_locked).toBe(true);
    return { id, shots: await shotsOf(id) };
  };
  const shotsOf = async (id: string) => (await admin.get(`/api/v1/projects/${id}/storyboards/`)).body.results as ShotOut[];
  const stageOf = async (id: string, stage: string) => (await admin.get(`/api/v1/projects/${id}/stages/`)).body.find((s: { stage_type: string }) => s.stage_type === stage);
  const runStage = async (id: string, stage: string, input: Record<string, unknown> = {}) => {
    const res = await admin.post(`/api/v1/projects/${id}/stages/${stage}/runs/`, { input });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return followRun(res.body.id);
  };
  const followRun = async (runId: string) => {
    const seen = await follow(`${studio.url}/api/v1/runs/${runId}/events`, { cookie: admin.cookie, timeoutMs: 90_000 });
    const done = seen.events.at(-1)!.data;
    expect(done.type, JSON.stringify(done)).toBe('done');
    return { events: seen.events, output: done.output as { narration: Item[]; failed_shot_ids: string[] }, run: done.run };
  };
  const download = async (url: string, name: string) => {
    const res = await fetch(studio.url + url, { headers: { cookie: admin.cookie } });
    expect(res.status).toBe(200);
    const file = path.join(work, name);
    await writeFile(file, Buffer.from(await res.arrayBuffer()));
    return file;
  };
  const probe = async (file: string) => {
    const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type:format=duration', '-of', 'json', file]);
    const json = JSON.parse(stdout.toString()) as { streams: { codec_type: string }[]; format: { duration: string } };
    return { types: json.streams.map((s) => s.codec_type), duration: Number(json.format.duration) };
  };
  /** Where speech resumes after each silence of at least 0.15 s (ffmpeg silencedetect). */
  const speechStarts = async (file: string) => {
    const { stderr } = await run('ffmpeg', ['-hide_banner', '-nostdin', '-i', file, '-af', 'silencedetect=noise=-45dB:d=0.15', '-f', 'null', '-']);
    return [...stderr.matchAll(/silence_end: ([\d.]+)/g)].map((m) => Number(m[1]));
  };

  /** The "Must show" checks for one finished run, whichever voice spoke it. */
  const checkNarration = async (id: string, shotsBefore: ShotOut[], output: { narration: Item[] }, lockedS: number) => {
    expect(output.narration.map((i) => i.shot_id)).toEqual(shotsBefore.map((s) => s.id));
    const shotsAfter = await shotsOf(id);
    for (const [k, item] of output.narration.entries()) {
      const file = await download(item.url, `${id}-${k}.wav`);
      const { types, duration } = await probe(file);
      expect(types).toEqual(['audio']);
      expect(duration).toBeGreaterThan(0);
      expect(Math.abs(duration - item.duration_s)).toBeLessThan(0.01);

      // Sentences: as split, in order, increasing, inside the audio.
      expect(item.sentences.map((s) => s.text).join('')).toBe(shotsAfter[k].narration_text);
      let previousEnd = 0;
      for (const s of item.sentences) {
        expect(s.start_s).toBeGreaterThanOrEqual(previousEnd);
        expect(s.end_s).toBeGreaterThan(s.start_s);
        expect(s.end_s).toBeLessThanOrEqual(duration);
        previousEnd = s.end_s;
      }
      // Each sentence starts where its speech starts: after the first, right where a pause ends.
      const starts = await speechStarts(file);
      expect(item.sentences[0].start_s).toBe(0);
      for (const s of item.sentences.slice(1)) {
        const nearest = Math.min(...starts.map((t) => Math.abs(t - s.start_s)));
        expect(nearest, `sentence "${s.text}" at ${s.start_s}s; speech resumes at ${starts.join(', ')}`).toBeLessThan(0.1);
      }

      // Shot length: narration + pause inside the range; a locked shot keeps its length and its speech fits it.
      const shot = shotsAfter[k];
      if (shot.duration_locked) {
        expect(shot.duration_seconds).toBe(lockedS);
        expect(item.shot_duration_s).toBeNull();
        expect(Math.abs(item.duration_s + PAUSE_S - lockedS)).toBeLessThan(0.05);
      } else {
        const expected = Math.max(item.duration_s, Math.min(MAX_SHOT_S, Math.max(MIN_SHOT_S, item.duration_s + PAUSE_S)));
        expect(shot.duration_seconds).toBeCloseTo(expected, 3);
        expect(item.shot_duration_s).toBeCloseTo(expected, 3);
      }
    }
    return shotsAfter;
  };

  it('speaks every shot with espeak-ng: one audio file per shot, measured sentence times, shot lengths from the speech; retimed shots make only their clips stale', async () => {
    const lockedS = 4;
    const { id, shots } = await newProject('offline voice', lockedS);
    // The clips exist before the narration: the shots the narration retimes must become stale there.
    await runStage(id, 'video');
    expect((await stageOf(id, 'video')).status).toBe('completed');

    const { events, output, run } = await runStage(id, 'narration', { local: true });
    expect(run).toMatchObject({ provider: 'Offline voice (espeak-ng)', is_simulated: true });
    expect(ofType(events, 'audio')).toHaveLength(SHOTS.length);
    for (const shot of shots) {
      const statuses = ofType(events, 'task').filter((e) => e.data.shot_id === shot.id).map((e) => e.data.status);
      expect(statuses[0]).toBe('queued');
      expect(statuses.at(-1)).toBe('succeeded');
    }
    expect(output.narration.every((i) => i.voice === 'cmn')).toBe(true);
    const after = await checkNarration(id, shots, output, lockedS);

    // Only shots whose length changed are stale in the video stage; the locked one is not.
    const retimed = after.filter((s, k) => Math.abs(s.duration_seconds - shots[k].duration_seconds) > 0.001).map((s) => s.id);
    expect(retimed.length).toBeGreaterThan(0);
    const video = await stageOf(id, 'video');
    expect(video.stale).toBe(false);
    expect([...video.stale_shot_ids].sort()).toEqual([...retimed].sort());
    expect(video.stale_shot_ids).not.toContain(shots[2].id);
    expect((await stageOf(id, 'narration')).status).toBe('completed');
  }, SLOW);

  it('speaks through an OpenAI-shape speech provider, and one edited sentence calls it once and changes only that shot', async () => {
    const provider = await admin.post('/api/v1/models/providers/', {
      name: 'speech',
      provider_type: 'tts',
      api_format: 'openai_speech',
      api_url: speech.url,
      api_key: speech.apiKey,
      model_name: 'tts-1',
    });
    expect(provider.status, JSON.stringify(provider.body)).toBe(201);
    try {
      const lockedS = 5;
      const { id, shots } = await newProject('provider voice', lockedS);
      await admin.patch(`/api/v1/projects/${id}/stages/narration/settings/`, { voice: 'nova' });
      const before = speech.stats.synthesized;
      const first = await runStage(id, 'narration');
      expect(first.run).toMatchObject({ provider: 'speech', is_simulated: false });
      const sentenceCount = first.output.narration.reduce((n, i) => n + i.sentences.length, 0);
      expect(speech.stats.synthesized - before).toBe(sentenceCount);
      expect(speech.stats.lastRequest).toMatchObject({ model: 'tts-1', voice: 'nova', response_format: 'wav' });
      expect(first.output.narration.every((i) => i.voice === 'nova')).toBe(true);
      const shotsAfterFirst = await checkNarration(id, shots, first.output, lockedS);

      // Edit the second sentence of shot 1: the provider is asked for that sentence only.
      const requestsBefore = speech.stats.requests;
      const edit = await admin.patch(`/api/v1/projects/${id}/narration/${shots[0].id}/sentences/1/`, { text: '一个撑着红色雨伞的小女孩慢慢地从巷子尽头走了过来。' });
      expect(edit.status, JSON.stringify(edit.body)).toBe(202);
      const second = await followRun(edit.body.id);
      expect(speech.stats.requests - requestsBefore).toBe(1);
      expect(speech.stats.lastRequest?.input).toBe('一个撑着红色雨伞的小女孩慢慢地从巷子尽头走了过来。');

      const [old0, old1, old2] = first.output.narration;
      const [new0, new1, new2] = second.output.narration;
      // Only shot 1's audio and timings changed; its unchanged first sentence reused its speech.
      expect(new1).toEqual(old1);
      expect(new2).toEqual(old2);
      expect(new0.media_id).not.toBe(old0.media_id);
      expect(new0.sentences[0]).toMatchObject({ text: old0.sentences[0].text, media_id: old0.sentences[0].media_id });
      expect(new0.sentences[1].media_id).not.toBe(old0.sentences[1].media_id);
      expect(new0.sentences[1].end_s).toBeGreaterThan(old0.sentences[1].end_s);
      expect(ofType(second.events, 'audio').map((e) => e.data.shot_id)).toEqual([shots[0].id]);
      const shotsAfterEdit = await checkNarration(id, shots, second.output, lockedS);
      expect(shotsAfterEdit[0].narration_text).toBe('雨夜里，一只橘猫在街角发抖。一个撑着红色雨伞的小女孩慢慢地从巷子尽头走了过来。');
      expect(shotsAfterEdit[0].duration_seconds).toBeGreaterThan(shotsAfterFirst[0].duration_seconds);
      expect(shotsAfterEdit.slice(1).map((s) => s.duration_seconds)).toEqual(shotsAfterFirst.slice(1).map((s) => s.duration_seconds));

      // Bad edits change nothing.
      expect((await admin.patch(`/api/v1/projects/${id}/narration/${shots[0].id}/sentences/9/`, { text: '多余。' })).status).toBe(404);
      expect((await admin.patch(`/api/v1/projects/${id}/narration/${shots[0].id}/sentences/0/`, { text: '  ' })).status).toBe(400);
      expect(speech.stats.requests - requestsBefore).toBe(1);
    } finally {
      await admin.delete(`/api/v1/models/providers/${provider.body.id}/`);
    }
  }, SLOW);

  it('a storyboard line of dialogue names its speaker, and that speaker\'s own voice speaks the shot', async () => {
    const llm = await startFakeLlm({ port: 0, host: '127.0.0.1' });
    const providers: string[] = [];
    try {
      const model = await admin.post('/api/v1/models/providers/', { name: 'story model', api_url: llm.url, model_name: 'fake-model?ttft=5&tps=2000' });
      providers.push(model.body.id);
      const voice = await admin.post('/api/v1/models/providers/', { name: 'voices', provider_type: 'tts', api_format: 'openai_speech', api_url: speech.url, api_key: speech.apiKey, model_name: 'tts-1' });
      expect(voice.status, JSON.stringify(voice.body)).toBe(201);
      providers.push(voice.body.id);
      const story = '雨夜，老人在街角的小店里修钟表。门开了，女孩抱着一只旧钟走进来。老人抬起头问：“这钟是谁的？”第二天清晨，钟又走了。';
      const id = (await admin.post('/api/v1/projects/', { name: 'dialogue', original_topic: story })).body.id as string;
      expect((await admin.patch(`/api/v1/projects/${id}/`, { min_shot_s: MIN_SHOT_S, max_shot_s: MAX_SHOT_S })).status).toBe(200);
      const board = await admin.post(`/api/v1/projects/${id}/stages/storyboard/runs/`, { input: { shot_count: 4 }, provider_id: model.body.id });
      expect(board.status, JSON.stringify(board.body)).toBe(202);
      expect((await follow(`${studio.url}/api/v1/runs/${board.body.id}/events`, { cookie: admin.cookie })).events.at(-1)!.data.type).toBe('done');

      const shots = await shotsOf(id);
      const dialogue = shots.find((s) => s.narration_text.includes('这钟是谁的'));
      expect(dialogue?.speaker, JSON.stringify(shots)).toBe('老人');
      expect(shots.filter((s) => s !== dialogue).map((s) => s.speaker)).toEqual([null, null, null]);

      expect((await admin.patch(`/api/v1/projects/${id}/stages/narration/settings/`, { voice: 'nova', voices_by_speaker: { 老人: 'onyx' } })).status).toBe(200);
      const spokenBefore = speech.stats.spoken.length;
      const { output } = await runStage(id, 'narration');
      expect(output.narration.map((i) => [i.shot_id, i.voice])).toEqual(shots.map((s) => [s.id, s === dialogue ? 'onyx' : 'nova']));
      // What the speech upstream was asked: the dialogue shot's sentences in the speaker's voice, every other one in the project's.
      const calls = speech.stats.spoken.slice(spokenBefore);
      expect(calls.length).toBeGreaterThanOrEqual(shots.length);
      for (const call of calls) expect([call.input, call.voice]).toEqual([call.input, dialogue!.narration_text.includes(call.input) ? 'onyx' : 'nova']);
      expect(calls.filter((c) => c.voice === 'onyx').map((c) => c.input).join('')).toBe(dialogue!.narration_text);
    } finally {
      for (const p of providers) await admin.delete(`/api/v1/models/providers/${p}/`);
      await llm.close();
    }
  }, SLOW);

  it('writes SRT and ASS that parse back, with lines that fit the frame, join to the narration, and can be edited', async () => {
    const { id, shots } = await newProject('subtitles', 6);
    // A big font, so long clauses must wrap by measured width.
    expect((await admin.patch(`/api/v1/projects/${id}/stages/narration/settings/`, { subtitle: { font_size: 90, outline: 4, position: 'douyin' } })).status).toBe(200);
    await runStage(id, 'narration', { local: true });
    const subtitles = (await admin.get(`/api/v1/projects/${id}/subtitles/`)).body;
    expect(subtitles).toMatchObject({ width: 720, height: 1280, font_size: 90, position: 'douyin' });
    const style = { width: 720, height: 1280, fontSize: 90, outline: 4, preset: 'douyin' as const };

    const srtRes = await fetch(`${studio.url}${subtitles.srt_url}`, { headers: { cookie: admin.cookie } });
    expect(srtRes.headers.get('content-disposition')).toMatch(/^attachment;.*filename\*=UTF-8''subtitles\.srt/);
    const srt = parseSrt(await srtRes.text());
    const assRes = await fetch(`${studio.url}${subtitles.ass_url}`, { headers: { cookie: admin.cookie } });
    expect(assRes.headers.get('content-disposition')).toMatch(/^attachment;/);
    const ass = parseAss(await assRes.text());
    expect(ass).toMatchObject({ width: 720, height: 1280, fontName: 'Noto Sans CJK SC', fontSize: 90, outline: 4 });

    const shotsNow = await shotsOf(id);
    for (const lines of [srt, ass.lines]) {
      expect(lines.map((l) => l.text)).toEqual(subtitles.lines.map((l: { text: string }) => l.text));
      expect(lines.length).toBeGreaterThan(SHOTS.length);
      for (const l of lines) expect(lineWidth(l.text, style)).toBeLessThanOrEqual(maxLineWidth(style));
      // On the timeline, each shot's lines sit inside that shot and join to its narration.
      let offset = 0;
      for (const shot of shotsNow) {
        // ASS keeps centiseconds: a time may move by up to 5 ms.
        const own = lines.filter((l) => l.start_s >= offset - 0.006 && l.end_s <= offset + shot.duration_seconds + 0.006);
        expect(own.map((l) => l.text).join('')).toBe(shot.narration_text);
        offset += shot.duration_seconds;
      }
      for (let k = 1; k < lines.length; k++) expect(lines[k].start_s).toBeGreaterThanOrEqual(lines[k - 1].end_s - 0.006);
    }

    // A line edited by hand is kept, in the JSON and in both files.
    const edited = subtitles.lines.map((l: { text: string }, k: number) => (k === 1 ? { ...l, text: '改过的字幕' } : l));
    const put = await admin.put(`/api/v1/projects/${id}/subtitles/`, { lines: edited });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body.lines[1].text).toBe('改过的字幕');
    const srtAfter = parseSrt(await (await fetch(`${studio.url}${subtitles.srt_url}`, { headers: { cookie: admin.cookie } })).text());
    expect(srtAfter[1].text).toBe('改过的字幕');
    expect(srtAfter[1].start_s).toBeCloseTo(subtitles.lines[1].start_s, 2);
    // A line outside its shot's narration is refused.
    const outside = subtitles.lines.map((l: { start_s: number; end_s: number }, k: number) => (k === 0 ? { ...l, end_s: l.start_s + 100 } : l));
    expect((await admin.put(`/api/v1/projects/${id}/subtitles/`, { lines: outside })).status).toBe(400);
    expect((await admin.put(`/api/v1/projects/${id}/subtitles/`, { lines: [{ ...subtitles.lines[0], shot_id: crypto.randomUUID() }] })).status).toBe(400);
  }, SLOW);

  it('lists the voices of the method in use and answers a sample of one', async () => {
    const { id } = await newProject('voices', 4);
    const voices = (await admin.get(`/api/v1/projects/${id}/narration/voices/`)).body;
    expect(voices).toMatchObject({ method: 'espeak', simulated: true, default_voice: 'cmn' });
    expect(voices.voices.map((v: { id: string }) => v.id)).toContain('cmn+f3');
    const sample = await fetch(`${studio.url}/api/v1/projects/${id}/narration/voice-sample/`, {
      method: 'POST',
      headers: { cookie: admin.cookie, 'content-type': 'application/json', origin: studio.url },
      body: JSON.stringify({ voice: 'cmn+f3' }),
    });
    expect(sample.status).toBe(200);
    expect(sample.headers.get('content-type')).toBe('audio/wav');
    const file = path.join(work, 'sample.wav');
    await writeFile(file, Buffer.from(await sample.arrayBuffer()));
    const { types, duration } = await probe(file);
    expect(types).toEqual(['audio']);
    expect(duration).toBeGreaterThan(0.3);
  }, SLOW);
});
