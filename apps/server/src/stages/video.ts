import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { frameSize, VideoInput, VideoSettings, VideoShotSettings, type Clip, type ClipMethod, type Movement, type VideoOutput } from '@ai-story/contracts';
import { renderCameraMotion, type CameraMovement } from '../media/camera-motion.ts';
import { fetchRemoteMedia, RemoteMediaError } from '../media/fetch-remote.ts';
import type { MediaTools } from '../media/ffmpeg.ts';
import { fitClipDuration } from '../media/fit-duration.ts';
import type { RenderPlace } from '../media/render-queue.ts';
import { MediaProviderError, outcomeOf, ProviderLimitError } from '../providers/media/errors.ts';
import { videoAdapterFor, type VideoApiFormat } from '../providers/media/video-adapter.ts';
import type { ClientProvider } from '../providers/service.ts';
import { limitedCall, settingsOf, shotSettingsOf, StageInputError, type MediaStageDefinition, type ShotRow, type ShotTask, type StageContext } from './definition.ts';

/** Bumped when the local renderer's output changes, so older cached clips are not reused. */
const RENDERER_VERSION = 1;
/** Vendor clips are a few MB; this bounds a hostile or broken answer. */
const MAX_VENDOR_CLIP_BYTES = 300 * 1024 * 1024;
/** Shot tasks in flight at once: local renders wait in the studio's render queue (their place is shown). */
const MAX_TASKS = 8;

const STATIC: CameraMovement = { movement_type: 'static', params: { speed: 'medium', intensity: 0.5, easing: 'linear' } };

type ImageItem = { shot_id: string; media_id: string; url: string; chosen?: boolean };

const stageOutput = <T>(ctx: StageContext, stage: string) => (ctx.stages.find((s) => s.stageType === stage)?.output ?? null) as T | null;

/** The shot's chosen image from the image stage (the one marked `chosen`, else its first). */
export function chosenImage(ctx: StageContext, shotId: string): ImageItem | undefined {
  const images = (stageOutput<{ images?: ImageItem[] }>(ctx, 'image')?.images ?? []).filter((i) => i.shot_id === shotId);
  return images.find((i) => i.chosen === true) ?? images[0];
}

/** The shot's movement from the camera stage; `static` when it has none. */
export function movementOf(ctx: StageContext, shotId: string): CameraMovement {
  const m = (stageOutput<{ movements?: Movement[] }>(ctx, 'camera')?.movements ?? []).find((x) => x.shot_id === shotId);
  if (!m) return STATIC;
  return { movement_type: m.movement_type, params: { speed: m.params.speed, intensity: m.params.intensity, easing: m.params.easing } };
}

/** How this shot's clip is made: its own choice, else the project's. */
export function methodOf(ctx: StageContext, shot: ShotRow): ClipMethod {
  return shotSettingsOf(VideoShotSettings, shot, 'video').method ?? settingsOf(VideoSettings, ctx.project, 'video').method;
}

/** Everything a clip depends on, hashed: equal keys mean an identical clip can be reused. */
export function clipCacheKey(parts: {
  imageSha256: string;
  movement: CameraMovement;
  duration_s: number;
  width: number;
  height: number;
  fps: number;
  method: ClipMethod;
  provider: string | null;
  model: string;
}): string {
  const { movement_type, params } = parts.movement;
  const canonical = JSON.stringify([
    RENDERER_VERSION,
    parts.imageSha256,
    movement_type,
    params.speed,
    params.intensity,
    params.easing,
    parts.duration_s,
    parts.width,
    parts.height,
    parts.fps,
    parts.method,
    parts.provider,
    parts.model,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}

/** A shot's clip cannot be made (no image, no tool, no provider); the task fails with these words. */
class ClipInputError extends Error {}

/** Vendor faults worth trying the next provider for. */
function failsOver(err: unknown): boolean {
  if (err instanceof MediaProviderError) return err.retryable || err.code === 'auth';
  if (err instanceof RemoteMediaError) return err.code === 'network' || err.code === 'timeout' || err.code === 'http_status';
  return false;
}

function describe(err: unknown): string {
  if (err instanceof MediaProviderError) return err.vendorMessage && !err.message.includes(err.vendorMessage) ? `${err.message}: ${err.vendorMessage}` : err.message;
  return err instanceof Error ? err.message : String(err);
}

/** Scratch files of renders in flight live beside the store (same file system, so the final move is a rename). */
const workDir = (task: ShotTask<VideoInput>) => path.join(task.services.media.root, '.work');

type ClipShape = { movement: CameraMovement; width: number; height: number; fps: number; duration_s: number };

async function renderLocal(task: ShotTask<VideoInput>, tools: MediaTools, place: RenderPlace, image: string, clip: ClipShape) {
  const { signal } = task;
  await mkdir(workDir(task), { recursive: true });
  const out = path.join(workDir(task), `${randomUUID()}.mp4`);
  try {
    await place.run(
      async (slotSignal) => {
        task.progress(0, 'rendering');
        await renderCameraMotion(tools, { image, out, ...clip, signal: slotSignal, onProgress: (f) => task.progress(Math.round(f * 100), 'rendering') });
      },
      { signal, onPosition: (position) => task.waiting(position) },
    );
    return await readFile(out);
  } finally {
    await rm(out, { force: true });
  }
}

async function renderWithProvider(task: ShotTask<VideoInput>, tools: MediaTools, place: RenderPlace, provider: ClientProvider, image: string, clip: ClipShape) {
  const { shot, signal, ctx, services } = task;
  // The vendor takes minutes: the shots after this one render meanwhile, and its fitting takes this
  // shot's place again when the clip is back.
  place.release();
  const adapter = videoAdapterFor(provider.api_format as VideoApiFormat);
  task.progress(0, 'vendor_queued');
  const started = performance.now();
  const usage = (units: number, outcome: string) =>
    services.recordUsage(provider, { units, unit: 'seconds', durationMs: performance.now() - started, outcome, runId: services.runId });
  // Our media URLs need a session, so the vendor gets the picture itself.
  const imageB64 = (await readFile(image)).toString('base64');
  const result = await limitedCall(services, provider, signal, () => adapter.generate(
    { api_url: provider.api_url, api_key: provider.api_key, api_secret: provider.api_secret || undefined, model_name: provider.model_name, timeout_s: provider.timeout_s },
    {
      image_b64: imageB64,
      prompt: shot.sceneDescription || shot.imagePrompt,
      duration_s: clip.duration_s,
      aspect_ratio: ctx.project.aspectRatio,
      movement: { movement_type: clip.movement.movement_type, params: { intensity: clip.movement.params.intensity } },
    },
    {
      signal,
      onStatus: (s) => task.progress(s.status === 'queued' ? 5 : 10 + Math.round((s.percent ?? 0) * 0.7), s.status === 'queued' ? 'vendor_queued' : 'vendor_running'),
    },
  )).catch(async (err: unknown) => {
    // Over its limit: no call was made, so there is nothing to record (the shot fails over).
    if (!(err instanceof ProviderLimitError)) await usage(0, outcomeOf(err, signal));
    throw err;
  });
  // The vendor bills the clip once its task succeeded, whatever happens to it here afterwards.
  await usage(result.usage.seconds, 'ok');
  // Vendor URLs expire (Kling's after 30 days, Ark's after 24 h, the simulator's sooner): fetched at once.
  task.progress(85, 'fetching');
  const { bytes } = await fetchRemoteMedia(result.url, { allowHostOf: provider.api_url, maxBytes: MAX_VENDOR_CLIP_BYTES, signal });
  await mkdir(workDir(task), { recursive: true });
  const input = path.join(workDir(task), `${randomUUID()}.vendor.mp4`);
  const out = path.join(workDir(task), `${randomUUID()}.mp4`);
  try {
    await writeFile(input, bytes);
    // Vendor clips come in 5 or 10 s: trimmed, or their last frame held, to the shot's length, at our size.
    await place.run(
      async (slotSignal) => {
        task.progress(90, 'fitting');
        await fitClipDuration(tools.ffmpeg, { input, out, duration_s: clip.duration_s, fps: clip.fps, width: clip.width, height: clip.height, signal: slotSignal });
      },
      { signal, onPosition: (position) => task.waiting(position) },
    );
    return { bytes: await readFile(out), seconds: result.usage.seconds };
  } finally {
    await rm(input, { force: true });
    await rm(out, { force: true });
  }
}

async function reusable(task: ShotTask<VideoInput>, cacheKey: string): Promise<Clip | null> {
  const previous = (await task.services.previousItem(task.shot.projectId, 'video', cacheKey)) as Clip | null;
  if (!previous) return null;
  const row = await task.services.media.find(previous.media_id);
  // A cleaned-up file is rendered again rather than pointed at.
  if (!row || !(await stat(task.services.media.fileOf(row)).catch(() => null))) return null;
  return { ...previous, id: undefined, cached: true, cost: 0, usage_seconds: 0 };
}

/**
 * A shot's place in the project's render line is taken at once, in storyboard order, before the
 * reads that prepare its render: a later shot whose reads answer first renders after it, not before.
 */
async function runShot(task: ShotTask<VideoInput>): Promise<Clip[]> {
  const place = task.services.renderQueue.reserve(task.ctx.project.id, task.shot.sequenceNumber);
  try {
    return await makeClip(task, place);
  } finally {
    place.release();
  }
}

async function makeClip(task: ShotTask<VideoInput>, place: RenderPlace): Promise<Clip[]> {
  const { shot, ctx, services, providers, input } = task;
  const tools = services.mediaTools;
  if (!tools) throw new ClipInputError('ffmpeg is not installed on the server (apt-get install -y ffmpeg)');
  const image = chosenImage(ctx, shot.id);
  if (!image) throw new ClipInputError('This shot has no image yet: generate its images first');
  const imageRow = await services.media.find(image.media_id);
  if (!imageRow) throw new ClipInputError('The image of this shot is no longer stored: generate it again');
  const imageFile = services.media.fileOf(imageRow);

  const method = methodOf(ctx, shot);
  const { width, height } = frameSize(ctx.project.aspectRatio, ctx.project.resolution);
  const clip = { movement: movementOf(ctx, shot.id), width, height, fps: ctx.project.fps, duration_s: shot.durationSeconds };
  const keyFor = (provider: ClientProvider | null) =>
    clipCacheKey({ imageSha256: imageRow.sha256, ...clip, method, provider: provider?.id ?? null, model: provider?.model_name ?? 'ffmpeg' });
  const candidates: (ClientProvider | null)[] = method === 'local' ? [null] : providers;
  if (candidates.length === 0) throw new ClipInputError('No image-to-video provider is available: add one, or make this shot 本地运镜 (local camera motion)');

  if (!input.force) {
    for (const provider of candidates) {
      const hit = await reusable(task, keyFor(provider));
      if (hit) return [{ ...hit, poster_url: image.url }];
    }
  }

  let made: { bytes: Buffer; provider: ClientProvider | null; seconds: number } | undefined;
  for (const [i, provider] of candidates.entries()) {
    if (!provider) {
      made = { bytes: await renderLocal(task, tools, place, imageFile, clip), provider: null, seconds: 0 };
      break;
    }
    try {
      made = { ...(await renderWithProvider(task, tools, place, provider, imageFile, clip)), provider };
      break;
    } catch (err) {
      if (task.signal.aborted) throw err;
      if (i === candidates.length - 1 || !failsOver(err)) throw new Error(`${provider.name}: ${describe(err)}`, { cause: err });
      task.progress(0, 'failing_over');
    }
  }
  const { bytes, provider, seconds } = made!;
  const row = await services.media.put(shot.projectId, bytes, {
    kind: 'video',
    mime: 'video/mp4',
    width,
    height,
    durationS: clip.duration_s,
    source: provider ? 'image2video' : 'local_motion',
    createdBy: services.userId,
  });
  return [
    {
      shot_id: shot.id,
      media_id: row.id,
      url: services.media.urlOf(row.id),
      poster_url: image.url,
      duration_s: Math.round(clip.fps * clip.duration_s) / clip.fps,
      width,
      height,
      fps: clip.fps,
      method,
      cache_key: keyFor(provider),
      provider: provider?.name ?? null,
      model: provider?.model_name ?? 'ffmpeg',
      usage_seconds: seconds,
      cost: provider ? seconds * provider.price_per_unit : 0,
    },
  ];
}

/** The shots a run works on: those named, else the stale ones of a completed stage, else all. */
function shotsOf(input: VideoInput, ctx: StageContext): ShotRow[] {
  if (input.shot_ids) {
    const wanted = new Set(input.shot_ids);
    return ctx.shots.filter((s) => wanted.has(s.id));
  }
  const row = ctx.stages.find((s) => s.stageType === 'video');
  const staleIds = new Set(row?.staleShotIds ?? []);
  if (row?.status === 'completed' && !row.stale && staleIds.size > 0) return ctx.shots.filter((s) => staleIds.has(s.id));
  return ctx.shots;
}

/**
 * 图生视频 (DESIGN §9): one clip per shot. 本地运镜 — the shot's image moved by its camera movement
 * with ffmpeg on this machine, through the studio's render queue — is real, free and the default;
 * an image-to-video provider (Kling, Seedance) is used for the shots (or projects) set to `ai`. Clips
 * are cached by a hash of their inputs, so a re-run after one change redoes that shot only.
 */
export const videoStage: MediaStageDefinition<VideoInput, Clip, VideoOutput> = {
  kind: 'media',
  key: 'video',
  input: VideoInput,
  defaultInput: () => ({}),
  needs: ['image'],
  reads: ['image', 'camera', 'video'],
  settings: VideoSettings,
  shotSettings: VideoShotSettings,
  providerType: 'image2video',
  local: {
    name: 'Local camera motion',
    model: 'ffmpeg',
    simulated: false,
    // Providers are looked up only when some shot of this run is to be made by one.
    preferred: (input, ctx) => !shotsOf(input, ctx).some((shot) => methodOf(ctx, shot) === 'ai'),
  },
  itemEvent: 'clip',
  usesFfmpeg: true,
  concurrency: (ctx) => Math.max(1, Math.min(MAX_TASKS, ctx.shots.length)),
  validate(input, ctx) {
    if (ctx.shots.length === 0) throw new StageInputError('input', 'Generate the storyboard first');
    if (!stageOutput(ctx, 'image')) throw new StageInputError('input', 'Generate the images first');
    const known = new Set(ctx.shots.map((s) => s.id));
    const unknown = input.shot_ids?.find((id) => !known.has(id));
    if (unknown) throw new StageInputError('input.shot_ids', `No shot ${unknown} in this project`);
  },
  shots: shotsOf,
  runShot,
  output(items, failedShotIds, input, ctx) {
    // Shots this run did not redo keep their clips; a redo that failed keeps the clip it had.
    const made = new Map(items.map((c) => [c.shot_id, c]));
    const before = new Map((stageOutput<VideoOutput>(ctx, 'video')?.clips ?? []).map((c) => [c.shot_id, c]));
    const clips = ctx.shots.map((s) => made.get(s.id) ?? before.get(s.id)).filter((c): c is Clip => !!c);
    return { clips, failed_shot_ids: failedShotIds };
  },
  persist: async (_store, _projectId, output) => output,
};
