import type { ModelConfig, NarrationOutput, Run, Subtitles, TimelineSubtitleLine, VoiceList } from '@ai-story/contracts';
import type { AuthUser } from '../auth/service.ts';
import type { ProjectRow } from '../db/schema.ts';
import type { ShotRow } from '../stages/definition.ts';
import { AppError, notFound } from '../errors.ts';
import type { ProjectRepository } from '../projects/repository.ts';
import type { ProjectService } from '../projects/service.ts';
import type { ProviderService } from '../providers/service.ts';
import type { RunService } from '../runs/service.ts';
import { narrationSettingsOf, subtitleStyleOf } from '../stages/narration.ts';
import type { StoryboardRepository } from '../storyboard/repository.ts';
import type { StoryboardService } from '../storyboard/service.ts';
import { splitSentences } from './sentences.ts';
import { resolveStyle, subtitleLines, toAss, toSrt } from './subtitles.ts';
import { methodOf, resolveVoice, synthesizeSentence, VOICES } from './voices.ts';

export interface NarrationDeps {
  projects: ProjectService;
  projectRepo: ProjectRepository;
  storyboards: StoryboardRepository;
  storyboardService: StoryboardService;
  providers: ProviderService;
  runs: RunService;
}

const SAMPLE_TEXT = '你好，这是配音试听。';

/**
 * What the 配音 tab does besides running the stage: voices and a sample of each, one sentence edited
 * and spoken again, and the subtitles on the project's timeline (read, edit, download).
 */
export class NarrationService {
  constructor(private readonly d: NarrationDeps) {}

  /** The voices of the method a run would use now (a provider's, or the offline voice). */
  async voices(user: AuthUser, projectId: string): Promise<VoiceList> {
    const { project } = await this.d.projects.access(user, projectId, 'view');
    const providers = await this.providersFor(project);
    const method = methodOf(providers);
    return {
      method,
      simulated: method === 'espeak' || providers[0]?.is_simulated === true,
      provider: providers[0]?.name ?? null,
      default_voice: VOICES[method].defaultVoice,
      voices: VOICES[method].voices,
    };
  }

  /** A short sample of a voice (试听), synthesised now and not stored. */
  async sample(user: AuthUser, projectId: string, body: { voice?: string; speed?: number; text?: string }, signal: AbortSignal) {
    const { project } = await this.d.projects.access(user, projectId, 'view');
    const providers = await this.providersFor(project);
    const settings = narrationSettingsOf(project);
    const voice = resolveVoice(methodOf(providers), body.voice ?? settings.voice);
    try {
      const result = await synthesizeSentence(providers, { text: body.text ?? SAMPLE_TEXT, voice, speed: body.speed ?? settings.speed, signal });
      return { audio: result.audio, mime: result.mime };
    } catch (err) {
      throw new AppError(503, 'unavailable', `The voice sample failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * One sentence of a shot's narration rewritten: the shot's text changes in place (the other
   * sentences and the whitespace between them stay as they were) and a narration run over that shot
   * starts; the other sentences' speech comes from the cache, so only this one is synthesised.
   */
  async editSentence(user: AuthUser, projectId: string, shotId: string, index: number, text: string): Promise<Run> {
    await this.d.projects.allows(user, projectId, 'edit');
    const shot = await this.d.storyboards.shot(shotId);
    if (!shot || shot.projectId !== projectId) throw notFound('Shot');
    const narration = replaceSentence(shot.narrationText, index, text);
    if (narration === null) throw notFound('Sentence');
    await this.d.storyboardService.update(user, shotId, { narration_text: narration });
    return this.d.runs.start(user, projectId, 'narration', { input: { shot_ids: [shotId] } });
  }

  async subtitles(user: AuthUser, projectId: string): Promise<Subtitles> {
    const { project } = await this.d.projects.access(user, projectId, 'view');
    const { lines, style } = await this.timeline(project);
    return {
      lines,
      width: style.width,
      height: style.height,
      font_size: style.fontSize,
      position: narrationSettingsOf(project).subtitle.position,
      srt_url: `/api/v1/projects/${projectId}/subtitles.srt`,
      ass_url: `/api/v1/projects/${projectId}/subtitles.ass`,
    };
  }

  /** Lines edited on the timeline, saved per shot (relative to the shot) as a new narration version. */
  async updateSubtitles(user: AuthUser, projectId: string, lines: TimelineSubtitleLine[]): Promise<Subtitles> {
    const { project } = await this.d.projects.access(user, projectId, 'edit');
    const shots = await this.d.storyboards.shots(projectId);
    const offsets = shotOffsets(shots);
    const byShot: Record<string, { text: string; start_s: number; end_s: number }[]> = {};
    for (const [i, line] of lines.entries()) {
      const offset = offsets.get(line.shot_id);
      if (offset === undefined) throw new AppError(400, 'validation_error', `lines.${i}.shot_id: no such shot in this project`, { fields: { [`lines.${i}.shot_id`]: 'Unknown shot' } });
      (byShot[line.shot_id] ??= []).push({ text: line.text, start_s: ms(line.start_s - offset), end_s: ms(line.end_s - offset) });
    }
    await this.d.runs.editOutput(user, projectId, 'narration', { subtitles: byShot });
    return this.subtitles(user, project.id);
  }

  /** The subtitle file (SRT or ASS), written by the subtitle libraries from the timeline's lines. */
  async subtitleFile(user: AuthUser, projectId: string, format: 'srt' | 'ass') {
    const { project } = await this.d.projects.access(user, projectId, 'view');
    const { lines, style } = await this.timeline(project);
    const body = format === 'srt' ? toSrt(lines) : toAss(lines, style);
    return { body, filename: `${project.name || 'subtitles'}.${format}` };
  }

  /** Every shot's lines, shifted to where the shot starts (the sum of the lengths before it). */
  private async timeline(project: ProjectRow) {
    const settings = narrationSettingsOf(project);
    const style = resolveStyle(subtitleStyleOf(project, settings));
    const shots = await this.d.storyboards.shots(project.id);
    const output = (await this.d.projectRepo.stage(project.id, 'narration'))?.output as NarrationOutput | null | undefined;
    const items = new Map((output?.narration ?? []).map((i) => [i.shot_id, i]));
    const offsets = shotOffsets(shots);
    const lines: TimelineSubtitleLine[] = [];
    for (const shot of shots) {
      const item = items.get(shot.id);
      if (!item) continue;
      const own = item.subtitle_lines ?? subtitleLines(item.sentences, style);
      const offset = offsets.get(shot.id)!;
      for (const l of own) lines.push({ shot_id: shot.id, text: l.text, start_s: ms(l.start_s + offset), end_s: ms(l.end_s + offset) });
    }
    return { lines, style };
  }

  private async providersFor(project: ProjectRow) {
    const selection = await this.d.providers.candidatesFor('tts', 'narration', { projectConfig: project.modelConfig as ModelConfig });
    return Promise.all(selection.order.map((p) => this.d.providers.clientProvider(p)));
  }
}

/** Where each shot starts on the project's timeline. */
export function shotOffsets(shots: Pick<ShotRow, 'id' | 'durationSeconds'>[]): Map<string, number> {
  const offsets = new Map<string, number>();
  let at = 0;
  for (const s of shots) {
    offsets.set(s.id, at);
    at += s.durationSeconds;
  }
  return offsets;
}

/**
 * The narration with its `index`-th sentence (as splitSentences counts them) replaced, or null when
 * there is no such sentence. Sentences are found in order in the text, so what lies between them
 * (whitespace, line breaks) is kept.
 */
export function replaceSentence(narration: string, index: number, text: string): string | null {
  const sentences = splitSentences(narration);
  if (!Number.isInteger(index) || index < 0 || index >= sentences.length) return null;
  let at = 0;
  for (const [i, sentence] of sentences.entries()) {
    const start = narration.indexOf(sentence, at);
    if (start < 0) return null;
    if (i === index) return narration.slice(0, start) + text.trim() + narration.slice(start + sentence.length);
    at = start + sentence.length;
  }
  return null;
}

const ms = (s: number) => Math.round(s * 1000) / 1000;
