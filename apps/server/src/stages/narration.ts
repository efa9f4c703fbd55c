import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  frameSize,
  NarrationInput,
  NarrationSettings,
  SubtitleLine,
  type AspectRatio,
  type NarrationItem,
  type NarrationOutput,
  type Resolution,
} from '@ai-story/contracts';
import pLimit from 'p-limit';
import { z } from 'zod';
import type { ProjectRow } from '../db/schema.ts';
import { assembleShotAudio } from '../narration/audio.ts';
import { splitSentences } from '../narration/sentences.ts';
import { subtitleLines, type SubtitleStyle } from '../narration/subtitles.ts';
import { methodOf, resolveVoice, sentenceCacheKey, synthesizeSentence } from '../narration/voices.ts';
import { settingsOf, StageInputError, type MediaStageDefinition, type ShotRow, type StageContext } from './definition.ts';

/**
 * 配音 (DESIGN §1, §9): each shot's narration spoken sentence by sentence, the sentences' times
 * measured from their own audio, the shot's track assembled and normalised, and the shot's length
 * set from it (narration + pause, clamped to the project's range) unless the user locked it — then
 * the speech is fitted to the locked length.
 *
 * Each sentence's speech is kept in the media store under a key of (method, model, voice, speed,
 * text): re-synthesising a shot after one sentence changed asks the provider for that sentence only.
 */
/** Sentences of one shot synthesised at once: vendors rate-limit per key, espeak is one CPU each. */
const SENTENCE_CONCURRENCY = 3;
/** Studio loudness target (EBU R128 integrated), moved by the project's volume setting. */
const TARGET_LUFS = -16;

export const narrationSettingsOf = (project: ProjectRow) => settingsOf(NarrationSettings, project, 'narration');

export function subtitleStyleOf(project: Pick<ProjectRow, 'aspectRatio' | 'resolution'>, settings: NarrationSettings): SubtitleStyle {
  const { width, height } = frameSize(project.aspectRatio as AspectRatio, project.resolution as Resolution);
  return { width, height, fontSize: settings.subtitle.font_size ?? undefined, outline: settings.subtitle.outline ?? undefined, preset: settings.subtitle.position };
}

/** The stage's current output, or null before its first run. */
export function currentNarration(ctx: Pick<StageContext, 'stages'>): NarrationOutput | null {
  const output = ctx.stages.find((s) => s.stageType === 'narration')?.output as NarrationOutput | null | undefined;
  return output?.narration ? output : null;
}

const speakable = (shots: ShotRow[]) => shots.filter((s) => s.narrationText.trim().length > 0);

/**
 * A shot's length from its narration: speech + one pause, inside the project's range (ms precision),
 * but never shorter than the speech itself — a clip cut at the range's end would cut the viewer off
 * mid-sentence, and the rest of the story with it.
 */
export function shotLengthFor(audioS: number, pauseS: number, project: Pick<ProjectRow, 'minShotS' | 'maxShotS'>): number {
  const seconds = Math.max(audioS, Math.min(project.maxShotS, Math.max(project.minShotS, audioS + pauseS)));
  return Math.round(seconds * 1000) / 1000;
}

const SubtitleEdit = z.object({ subtitles: z.record(z.string(), z.array(SubtitleLine)) });

export const narrationStage: MediaStageDefinition<NarrationInput, NarrationItem, NarrationOutput> = {
  kind: 'media',
  key: 'narration',
  input: NarrationInput,
  reads: ['narration'],
  defaultInput: () => ({}),
  settings: NarrationSettings,
  providerType: 'tts',
  local: { name: 'Offline voice (espeak-ng)', model: 'espeak-ng cmn', simulated: true, preferred: (input) => input.local === true },
  itemEvent: 'audio',
  usesFfmpeg: true,
  concurrency: () => 2,

  validate(input, ctx) {
    if (ctx.shots.length === 0) throw new StageInputError('input', 'Generate the storyboard first');
    if (speakable(ctx.shots).length === 0) throw new StageInputError('input', 'No shot has narration text to speak');
    const known = new Set(ctx.shots.map((s) => s.id));
    const unknown = input.shot_ids?.find((id) => !known.has(id));
    if (unknown) throw new StageInputError('input.shot_ids', `No shot ${unknown} in this project`);
  },

  shots(input, ctx) {
    const shots = speakable(ctx.shots);
    if (input.shot_ids) return shots.filter((s) => input.shot_ids!.includes(s.id));
    // After a storyboard edit only the changed shots are out of date (DESIGN §9).
    const stage = ctx.stages.find((s) => s.stageType === 'narration');
    if (stage?.status === 'completed' && !stage.stale && stage.staleShotIds?.length) return shots.filter((s) => stage.staleShotIds.includes(s.id));
    return shots;
  },

  async runShot({ shot, ctx, signal, providers, services, progress }) {
    const settings = narrationSettingsOf(ctx.project);
    const method = methodOf(providers);
    const model = method === 'espeak' ? 'espeak-ng' : providers[0].model_name;
    const voice = resolveVoice(method, (shot.speaker && settings.voices_by_speaker[shot.speaker]) || settings.voice);
    const texts = splitSentences(shot.narrationText);
    if (texts.length === 0) throw new Error('This shot has no narration text');

    const known = new Map<string, string>();
    for (const item of currentNarration(ctx)?.narration ?? []) for (const s of item.sentences) if (s.cache_key && s.media_id) known.set(s.cache_key, s.media_id);

    let spoken = 0;
    // What the vendor calls of this shot cost (cached sentences cost nothing again).
    const billed = { characters: 0, cost: 0 };
    const limit = pLimit(SENTENCE_CONCURRENCY);
    const parts = await Promise.all(
      texts.map((text) =>
        limit(async () => {
          const key = sentenceCacheKey(method, model, voice, settings.speed, text);
          const cached = await cachedFile(services.media, known.get(key));
          let audio: Buffer | string;
          let mediaId: string;
          if (cached) {
            audio = cached.file;
            mediaId = cached.id;
          } else {
            // Vendors bill the input's characters (a CJK character is one); a failed call bills nothing.
            const characters = [...text].length;
            const result = await synthesizeSentence(providers, { text, voice, speed: settings.speed, signal }, async (provider, call) => {
              const ok = call.outcome === 'ok';
              await services.recordUsage(provider, { units: ok ? characters : 0, unit: 'characters', durationMs: call.durationMs, outcome: call.outcome, runId: services.runId });
              if (ok) {
                billed.characters += characters;
                billed.cost += (characters * provider.price_per_unit) / 1000;
              }
            }, services.beginCall);
            const row = await services.media.put(shot.projectId, result.audio, { kind: 'audio', source: `sentence:${method}`, createdBy: services.userId });
            audio = result.audio;
            mediaId = row.id;
          }
          progress(Math.round((++spoken / texts.length) * 80), 'synthesizing');
          return { text, audio, mediaId, key };
        }),
      ),
    );

    progress(85, 'assembling');
    const dir = await mkdtemp(path.join(tmpdir(), 'shot-narration-'));
    try {
      const out = path.join(dir, 'narration.wav');
      const locked = shot.durationLocked;
      // A locked shot keeps its length: the speech is fitted to it, leaving the closing pause.
      const target = locked ? Math.max(0.5, shot.durationSeconds - settings.pause_s) : undefined;
      const assembled = await assembleShotAudio({
        sentences: parts.map((p) => ({ text: p.text, audio: p.audio })),
        pauseS: settings.pause_s,
        out,
        targetDurationS: target,
        loudnessLufs: TARGET_LUFS + 20 * Math.log10(settings.volume),
        signal,
      });
      const row = await services.media.put(shot.projectId, await readFile(out), { kind: 'audio', durationS: assembled.duration_s, source: 'narration', createdBy: services.userId });
      return [
        {
          shot_id: shot.id,
          media_id: row.id,
          url: services.media.urlOf(row.id),
          duration_s: assembled.duration_s,
          voice,
          tempo: assembled.tempo,
          sentences: assembled.sentences.map((t, i) => ({ ...t, media_id: parts[i].mediaId, cache_key: parts[i].key })),
          shot_duration_s: locked ? null : shotLengthFor(assembled.duration_s, settings.pause_s, ctx.project),
          subtitle_lines: subtitleLines(assembled.sentences, subtitleStyleOf(ctx.project, settings)),
          subtitles_edited: false,
          ...(method !== 'espeak' && { characters: billed.characters, cost: Math.round(billed.cost * 1_000_000) / 1_000_000 }),
        },
      ];
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },

  // A run over some shots keeps the others' narration: the output is always the whole storyboard's.
  output(items, failedShotIds, _input, ctx) {
    const byShot = new Map((currentNarration(ctx)?.narration ?? []).map((i) => [i.shot_id, i]));
    for (const item of items) byShot.set(item.shot_id, item);
    return { narration: ctx.shots.flatMap((s) => byShot.get(s.id) ?? []), failed_shot_ids: failedShotIds };
  },

  // Shot lengths follow the narration; a shot whose length changed is remembered so its clip is redone.
  async persist(store, projectId, output) {
    const lengths = output.narration.flatMap((i) => (i.shot_duration_s == null ? [] : [{ shotId: i.shot_id, seconds: i.shot_duration_s }]));
    await store.storyboards.setNarratedDurations(projectId, lengths);
    return output;
  },

  /** Subtitle lines edited by hand, per shot (times relative to the shot), saved as a new version. */
  editOutput(edit, current) {
    if (!current?.narration?.length) throw new StageInputError('output', 'Generate the narration first');
    const parsed = SubtitleEdit.safeParse(edit);
    if (!parsed.success) throw new StageInputError('output.subtitles', parsed.error.issues[0].message);
    const byShot = new Map(current.narration.map((i) => [i.shot_id, i]));
    for (const [shotId, lines] of Object.entries(parsed.data.subtitles)) {
      const item = byShot.get(shotId);
      if (!item) throw new StageInputError('output.subtitles', `Shot ${shotId} has no narration`);
      for (const line of lines) {
        if (!(line.end_s > line.start_s) || line.start_s < 0 || line.end_s > item.duration_s + 0.001) {
          throw new StageInputError('output.subtitles', `A line of shot ${shotId} is outside its narration (0–${item.duration_s} s) or ends before it starts`);
        }
      }
    }
    const narration = current.narration.map((i) => {
      const lines = parsed.data.subtitles[i.shot_id];
      return lines ? { ...i, subtitle_lines: lines, subtitles_edited: true } : i;
    });
    return { output: { ...current, narration }, text: '' };
  },
};

/** A sentence's earlier speech, when its row and file are still there. */
async function cachedFile(media: { find(id: string): Promise<import('../db/schema.ts').MediaRow | undefined>; fileOf(row: import('../db/schema.ts').MediaRow): string }, id: string | undefined) {
  if (!id) return null;
  const row = await media.find(id);
  if (!row) return null;
  const file = media.fileOf(row);
  const present = await stat(file).then(
    () => true,
    () => false,
  );
  return present ? { id, file } : null;
}
