import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ExportInput, ExportSettings, type ExportOutput, type MediaItem } from '@ai-story/contracts';
import { composeVideo, renderShotSegment, type SegmentSettings } from '../export/compose.ts';
import { renderCover } from '../export/cover.ts';
import { runMediaTool } from '../export/ffmpeg-process.ts';
import { writeJianyingDraft } from '../export/jianying-draft.ts';
import { frameOf, placeLines, planExport, subtitleStyleOf, timelineOf, type PlannedShot } from '../export/plan.ts';
import { findMediaTools, type MediaTools } from '../media/ffmpeg.ts';
import type { MediaStore } from '../media/store.ts';
import { toAss, toSrt } from '../narration/subtitles.ts';
import { settingsOf, StageInputError, type MediaServices, type MediaStageDefinition, type StageContext } from './definition.ts';

/** One shot's part of an export: its normalised segment, rendered or found in the cache. */
export interface ExportSegmentItem extends MediaItem {
  /** The picture the segment was made from (a clip, or a still image). */
  source: 'clip' | 'image';
  segment_key: string;
  duration_s: number;
  cached: boolean;
}

const settingsFor = (ctx: StageContext) => settingsOf(ExportSettings, ctx.project, 'export');

function tools(): MediaTools {
  const found = findMediaTools({});
  if (!found) throw new StageInputError('input', 'ffmpeg is not installed on the server (apt-get install -y ffmpeg)');
  return found;
}

/** Segments live beside the media store, per project, so a re-export reuses the shots that did not change. */
const cacheDirOf = (media: MediaStore, projectId: string) => path.join(path.dirname(media.root), 'media-cache', projectId);

async function fileOf(media: MediaStore, id: string, what: string): Promise<string> {
  const row = await media.find(id);
  if (!row) throw new Error(`${what} ${id} is no longer in the media store`);
  return media.fileOf(row);
}

function planned(ctx: StageContext): PlannedShot[] {
  return planExport(ctx, settingsFor(ctx)).filter((p) => p.picture);
}

/**
 * 合成导出 (DESIGN §9, issue "The finished video"): each shot task renders (or reuses) the shot's
 * normalised segment; the finishing step composes them (transitions, narration, ducked music,
 * loudness, subtitles, AIGC label) and makes the cover, SRT/ASS, the narration track and the 剪映
 * draft. Everything is made in a temporary folder and stored only once all of it exists, so a cancelled
 * export leaves nothing behind and the previous export stays the stage's output.
 */
export const exportStage: MediaStageDefinition<ExportInput, ExportSegmentItem, ExportOutput> = {
  kind: 'media',
  key: 'export',
  input: ExportInput,
  reads: ['image', 'camera', 'narration', 'video'],
  defaultInput: () => ({}),
  settings: ExportSettings,
  providerType: null,
  local: { name: 'Local export (ffmpeg)', model: 'ffmpeg', simulated: false },
  itemEvent: 'clip',
  usesFfmpeg: true,
  // Two cores in the reference machine: one segment each.
  concurrency: () => 2,
  validate(_input, ctx) {
    if (ctx.shots.length === 0) throw new StageInputError('input', 'Generate the storyboard first');
    if (planned(ctx).length === 0) throw new StageInputError('input', 'No shot has a clip or an image yet: make the clips first');
    tools();
  },
  // Every shot with a picture: a task whose segment is cached ends at once as `cached`.
  shots: (_input, ctx) => planned(ctx).map((p) => p.shot),

  async runShot({ shot, input, ctx, signal, services, progress }) {
    const plan = planned(ctx).find((p) => p.shot.id === shot.id)!;
    const picture = plan.picture!;
    const { width, height, fps } = frameOf(ctx);
    const segment = await renderShotSegment(
      services.mediaTools ?? tools(),
      { clip: await fileOf(services.media, picture.media_id, picture.kind), duration_s: plan.duration_s },
      { width, height, fps } satisfies SegmentSettings,
      cacheDirOf(services.media, ctx.project.id),
      { signal, force: input.shot_ids?.includes(shot.id), onProgress: (f) => progress(Math.round(f * 100), 'segment') },
    );
    return [{
      shot_id: shot.id,
      media_id: picture.media_id,
      url: services.media.urlOf(picture.media_id),
      source: picture.kind,
      segment_key: segment.key,
      duration_s: plan.duration_s,
      cached: segment.cached,
    }];
  },

  async finish({ items, ctx, signal, services, progress }) {
    return finishExport(items, ctx, signal, services, progress);
  },

  output: (items, failed, _input, _ctx, finished) => ({
    ...(finished as Omit<ExportOutput, 'failed_shot_ids'>),
    segments: { rendered: items.filter((i) => !i.cached).length, reused: items.filter((i) => i.cached).length },
    failed_shot_ids: failed,
  }),
  persist: async (_store, _projectId, output) => output,
};

type Progress = (percent: number, step?: string) => void;

async function finishExport(items: ExportSegmentItem[], ctx: StageContext, signal: AbortSignal, services: MediaServices, progress: Progress) {
  const ffmpeg = services.mediaTools ?? tools();
  const settings = settingsFor(ctx);
  const { width, height, fps } = frameOf(ctx);
  const done = new Set(items.map((i) => i.shot_id));
  const shots = planned(ctx).filter((p) => done.has(p.shot.id));
  if (shots.length === 0) throw new Error('No shot has a segment to compose');
  const media = services.media;
  const projectId = ctx.project.id;
  const work = await mkdtemp(path.join(os.tmpdir(), 'ai-story-export-stage-'));
  try {
    const pictures = await Promise.all(shots.map((p) => fileOf(media, p.picture!.media_id, p.picture!.kind)));
    const voices = await Promise.all(shots.map((p) => (p.narration ? fileOf(media, p.narration.media_id, 'narration') : Promise.resolve(undefined))));
    const line = timelineOf(shots, settings, fps);
    const lines = placeLines(shots, line.starts_s, settings.subtitle_edits);
    const style = subtitleStyleOf(settings, width, height);
    const srtFile = path.join(work, 'subtitles.srt');
    const assFile = path.join(work, 'subtitles.ass');
    await writeFile(srtFile, toSrt(lines));
    await writeFile(assFile, toAss(lines, style));

    const video = path.join(work, 'video.mp4');
    const composeWeight = 80;
    await composeVideo(
      ffmpeg,
      {
        out: video,
        width,
        height,
        fps,
        shots: shots.map((p, i) => ({ clip: pictures[i], duration_s: p.duration_s, ...(voices[i] && { narration: voices[i] }) })),
        transition: { kind: settings.transition, duration_s: settings.transition_s },
        ...(settings.subtitle_mode !== 'none' && lines.length > 0 && { subtitles: { assFile, srtFile, mode: settings.subtitle_mode } }),
        ...(settings.music_media_id && { music: { file: await fileOf(media, settings.music_media_id, 'music'), volume: settings.music_volume, duck: settings.music_duck } }),
        label: { text: settings.label_text, visible: settings.label_visible },
        metadata: { title: ctx.project.name },
        cacheDir: cacheDirOf(media, projectId),
      },
      { signal, onProgress: (p) => progress(p.fraction * composeWeight, p.step === 'segments' ? 'segments' : 'compose') },
    );

    progress(composeWeight, 'cover');
    const coverFile = path.join(work, 'cover.jpg');
    const coverImage = settings.cover_image_media_id ? await fileOf(media, settings.cover_image_media_id, 'cover image') : null;
    await renderCover({
      ...(coverImage ? { image: coverImage } : { videoFrameAt: { file: video, t: Math.min(settings.cover_frame_s ?? 1, Math.max(0, line.total_s - 1 / fps)) } }),
      title: settings.cover_title ?? ctx.project.name,
      width,
      height,
      out: coverFile,
      ffmpeg: ffmpeg.ffmpeg,
      signal,
    });

    progress(85, 'narration');
    const narrationFile = voices.some(Boolean) ? await narrationTrack(ffmpeg, shots, voices, line.starts_s, line.total_s, work, signal) : null;

    progress(90, 'draft');
    // The draft has no transitions: shots sit back to back, and the subtitles follow that timeline.
    const draftStarts: number[] = [];
    shots.reduce((at, p) => (draftStarts.push(at), at + p.duration_s), 0);
    const draftFile = path.join(work, 'draft.zip');
    await writeJianyingDraft(
      {
        out: draftFile,
        name: ctx.project.name,
        width,
        height,
        fps,
        shots: shots.map((p, i) => ({
          // A still shot goes in as its rendered segment: the editor gets a clip of the right length.
          clip: p.picture!.kind === 'clip' ? pictures[i] : path.join(cacheDirOf(media, projectId), `${items.find((it) => it.shot_id === p.shot.id)!.segment_key}.mp4`),
          duration_s: p.duration_s,
          ...(voices[i] && { narration: voices[i], narration_duration_s: Math.min(p.narration!.duration_s, p.duration_s) }),
        })),
        subtitles: placeLines(shots, draftStarts, settings.subtitle_edits).map(({ text, start_s, end_s }) => ({ text, start_s, end_s })),
      },
      { ffprobe: ffmpeg.ffprobe },
    );

    // Stored only now that every part exists: a cancel before this point leaves the store untouched.
    signal.throwIfAborted();
    progress(97, 'store');
    const by = services.userId;
    const put = async (file: string, meta: Parameters<MediaStore['put']>[2]) => media.put(projectId, await readFile(file), { ...meta, createdBy: by });
    const videoRow = await put(video, { kind: 'video', width, height, durationS: line.total_s, source: 'export' });
    const srtRow = lines.length ? await put(srtFile, { kind: 'subtitle', mime: 'application/x-subrip', source: 'export' }) : null;
    const assRow = lines.length ? await put(assFile, { kind: 'subtitle', mime: 'text/x-ssa', source: 'export' }) : null;
    const coverRow = await put(coverFile, { kind: 'image', width, height, source: 'export' });
    const narrationRow = narrationFile ? await put(narrationFile, { kind: 'audio', durationS: line.total_s, source: 'export' }) : null;
    const draftRow = await put(draftFile, { kind: 'archive', source: 'export' });
    progress(100, 'done');
    return {
      video: { media_id: videoRow.id, url: media.urlOf(videoRow.id), duration_s: line.total_s, width, height, size_bytes: (await stat(video)).size },
      subtitles: { srt_url: srtRow && media.urlOf(srtRow.id), ass_url: assRow && media.urlOf(assRow.id) },
      cover_url: media.urlOf(coverRow.id),
      narration_url: narrationRow && media.urlOf(narrationRow.id),
      draft_url: media.urlOf(draftRow.id),
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The narration alone, each shot's speech at its start on the final timeline (AAC in .m4a). */
async function narrationTrack(
  ffmpeg: MediaTools,
  shots: PlannedShot[],
  voices: (string | undefined)[],
  starts: number[],
  total: number,
  work: string,
  signal: AbortSignal,
): Promise<string> {
  const out = path.join(work, 'narration.m4a');
  const args = ['-hide_banner', '-nostdin', '-nostats', '-y'];
  const chains: string[] = [];
  let n = 0;
  shots.forEach((p, i) => {
    if (!voices[i]) return;
    args.push('-i', voices[i]);
    chains.push(`[${n}:a]aresample=48000,aformat=channel_layouts=stereo,atrim=end=${p.duration_s.toFixed(6)},adelay=${Math.round(starts[i] * 1000)}:all=1[a${n}]`);
    n++;
  });
  const mix = `${Array.from({ length: n }, (_, k) => `[a${k}]`).join('')}amix=inputs=${n}:normalize=0:duration=longest,apad=whole_dur=${total.toFixed(6)},atrim=end=${total.toFixed(6)}[out]`;
  args.push('-filter_complex', [...chains, mix].join(';'), '-map', '[out]', '-c:a', 'aac', '-b:a', '128k', '-movflags', '+faststart', '-f', 'mp4', out);
  await runMediaTool(ffmpeg.ffmpeg, args, { signal, timeoutMs: 60_000 + 5_000 * total });
  return out;
}
