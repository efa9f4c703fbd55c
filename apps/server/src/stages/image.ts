import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  frameSize,
  ImageInput,
  ImageSettings,
  ImageShotSettings,
  MAX_IMAGE_BYTES,
  type Character,
  type ImageItem,
  type ImageOutput,
  type RunUsage,
} from '@ai-story/contracts';
import { sharp } from '../media/sharp.ts';
import type { ProjectRow } from '../db/schema.ts';
import { fetchRemoteMedia, RemoteMediaError } from '../media/fetch-remote.ts';
import type { MediaStore } from '../media/store.ts';
import { MediaProviderError, outcomeOf, ProviderLimitError } from '../providers/media/errors.ts';
import { imageAdapterFor } from '../providers/media/image-adapter.ts';
import { renderOfflineImage } from '../providers/offline/image-renderer.ts';
import type { ClientProvider } from '../providers/service.ts';
import { limitedCall, settingsOf, shotSettingsOf, StageInputError, type MediaServices, type MediaStageDefinition, type ShotRow, type StageContext } from './definition.ts';

/** The longer side of a card's thumbnail: sharp enough on a 2× screen, a few kB as WebP. */
const THUMB_SIDE = 320;
/** A provider's own retries happen inside its adapter; this is how long a Retry-After may hold a shot before failing over. */
const MAX_WAIT_BEFORE_FAILOVER_MS = 5_000;

/** A reference picture is sent inline (the studio's media is private): vendors cap request bodies, and a likeness needs no more detail than this. */
const REFERENCE_MAX_SIDE = 1024;
const REFERENCE_MAX_BYTES = 1024 * 1024;

/** The characters a text names, in the project's order. */
const charactersIn = (text: string, characters: Character[]) => characters.filter((c) => text.includes(c.name));

/** The look of every character the text names, appended to the prompt (a character named in the shot looks the same in every shot). */
export function promptWithCharacters(prompt: string, text: string, characters: Character[]): string {
  const looks = charactersIn(text, characters).filter((c) => c.look.trim()).map((c) => `${c.name}：${c.look.trim()}`);
  return looks.length ? `${prompt}\n${looks.join('；')}` : prompt;
}

/** This run's override, else the shot's image prompt, else its scene. */
const basePromptOf = (shot: ShotRow, override?: string) => override?.trim() || shot.imagePrompt.trim() || shot.sceneDescription.trim() || shot.narrationText.trim();
/** Where a character is looked for: the shot's scene, its narration and its prompt. */
const namingTextOf = (shot: ShotRow, base: string) => `${shot.sceneDescription}\n${shot.narrationText}\n${base}`;

/** The prompt a shot's image is made from: this run's override, else the shot's image prompt, else its scene; plus its characters' looks. */
export function imagePromptOf(shot: ShotRow, project: ProjectRow, override?: string): string {
  const base = basePromptOf(shot, override);
  return promptWithCharacters(base, namingTextOf(shot, base), project.characters ?? []);
}

/**
 * The chosen picture of the first character (in the project's order) that the shot names and that
 * has one, as a data URI; null when there is none. Vendors take one reference, so one is sent. A
 * picture that is large is sent as a smaller JPEG; a picture no longer in the store is left out.
 */
export async function referenceImageOf(shot: ShotRow, project: ProjectRow, media: MediaStore, override?: string): Promise<string | null> {
  const named = charactersIn(namingTextOf(shot, basePromptOf(shot, override)), project.characters ?? []).find((c) => c.image_media_id);
  if (!named?.image_media_id) return null;
  const row = await media.find(named.image_media_id);
  // The picture was checked to be this project's when it was set; a row gone since (or moved) is not sent.
  if (!row || row.projectId !== shot.projectId || row.kind !== 'image') return null;
  let bytes = await readFile(media.fileOf(row)).catch(() => null);
  if (!bytes) return null;
  let mime = row.mime;
  if (bytes.length > REFERENCE_MAX_BYTES || Math.max(row.width ?? 0, row.height ?? 0) > REFERENCE_MAX_SIDE) {
    bytes = await sharp(bytes).resize(REFERENCE_MAX_SIDE, REFERENCE_MAX_SIDE, { fit: 'inside', withoutEnlargement: true }).jpeg({ quality: 85 }).toBuffer();
    mime = 'image/jpeg';
  }
  return `data:${mime};base64,${bytes.toString('base64')}`;
}

/** The shots a run works on: those named, else all of them. */
function shotsOf(input: ImageInput, ctx: StageContext): ShotRow[] {
  if (!input.shot_ids) return ctx.shots;
  const wanted = new Set(input.shot_ids);
  return ctx.shots.filter((s) => wanted.has(s.id));
}

export function candidatesOf(input: ImageInput, project: ProjectRow): number {
  return input.candidates ?? settingsOf(ImageSettings, project, 'image').candidates;
}

/** What a run would cost before it starts: every shot × candidates × the first provider's price per image. */
export function estimateOf(shotCount: number, candidates: number, pricePerUnit: number) {
  const images = shotCount * candidates;
  return { images, cost: Math.round(images * pricePerUnit * 10_000) / 10_000 };
}

/** Stores an image and its thumbnail; answers the item (not chosen yet). */
export async function storeImage(
  media: MediaStore,
  shot: Pick<ShotRow, 'id' | 'projectId'>,
  bytes: Buffer,
  opts: { source: ImageItem['source']; userId: string | null; cost?: number },
): Promise<ImageItem> {
  const meta = await sharp(bytes).metadata();
  if (!meta.width || !meta.height) throw new Error('The image has no size');
  const row = await media.put(shot.projectId, bytes, { kind: 'image', width: meta.width, height: meta.height, source: opts.source, createdBy: opts.userId });
  const thumbBytes = await sharp(bytes).resize(THUMB_SIDE, THUMB_SIDE, { fit: 'inside', withoutEnlargement: true }).webp({ quality: 72 }).toBuffer();
  const thumbMeta = await sharp(thumbBytes).metadata();
  const thumb = await media.put(shot.projectId, thumbBytes, { kind: 'image', width: thumbMeta.width, height: thumbMeta.height, source: 'thumbnail', createdBy: opts.userId });
  return {
    id: randomUUID(),
    shot_id: shot.id,
    media_id: row.id,
    url: media.urlOf(row.id),
    thumb_url: media.urlOf(thumb.id),
    width: meta.width,
    height: meta.height,
    chosen: false,
    source: opts.source,
    ...(opts.cost !== undefined && { cost: opts.cost }),
  };
}

/**
 * Marks one image per shot as the one used: the shot's pick when it is still a candidate, else its
 * first candidate (DESIGN §9: a regenerated shot uses the first image until one is picked).
 */
export function markChosen(images: ImageItem[], chosenByShot: Map<string, string | null>): ImageItem[] {
  const firstOf = new Map<string, string>();
  for (const img of images) if (!firstOf.has(img.shot_id)) firstOf.set(img.shot_id, img.id);
  const known = new Set(images.map((i) => i.id));
  return images.map((img) => {
    const picked = chosenByShot.get(img.shot_id);
    const chosenId = picked && known.has(picked) ? picked : firstOf.get(img.shot_id);
    return { ...img, chosen: img.id === chosenId };
  });
}

/** Tries the providers in order; a retryable fault (429, 5xx, timeout) moves on to the next one. */
async function generateRemote(
  providers: ClientProvider[],
  prompt: string,
  size: { width: number; height: number },
  n: number,
  reference: () => Promise<string | null>,
  signal: AbortSignal,
  services: Pick<MediaServices, 'recordUsage' | 'beginCall' | 'runId'>,
  onTry: (p: ClientProvider) => void,
) {
  let last: unknown;
  for (const provider of providers) {
    onTry(provider);
    const started = performance.now();
    try {
      const adapter = imageAdapterFor(provider.api_format);
      const referenceImage = adapter.acceptsReferenceImage ? await reference() : null;
      const result = await limitedCall(services, provider, signal, () =>
        adapter.generate(
          { api_url: provider.api_url, api_key: provider.api_key, model_name: provider.model_name, timeout_s: provider.timeout_s },
          { prompt, width: size.width, height: size.height, n, ...(referenceImage && { reference_image_url: referenceImage }) },
          { signal },
        ),
      );
      await services.recordUsage(provider, { units: result.usage.images, unit: 'images', durationMs: performance.now() - started, outcome: 'ok', runId: services.runId });
      return { provider, result };
    } catch (err) {
      last = err;
      if (err instanceof ProviderLimitError) continue; // not called: nothing to record, the next provider at once
      await services.recordUsage(provider, { units: 0, unit: 'images', durationMs: performance.now() - started, outcome: outcomeOf(err, signal), runId: services.runId });
      if (signal.aborted) throw err;
      if (!(err instanceof MediaProviderError) || !err.retryable) throw err;
      if (err.retryAfterMs && providers.indexOf(provider) < providers.length - 1) {
        await sleep(Math.min(err.retryAfterMs, MAX_WAIT_BEFORE_FAILOVER_MS), undefined, { signal });
      }
    }
  }
  throw last;
}

/** The words a task's failure is shown with: a refusal says it is one, in the vendor's own words. */
function shotError(err: unknown): Error {
  if (err instanceof MediaProviderError && err.code === 'moderation') {
    return new Error(`The provider refused this shot's prompt (content moderation): ${err.vendorMessage ?? err.message}`);
  }
  if (err instanceof RemoteMediaError) return new Error(`The image could not be fetched: ${err.message}`);
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * 文生图 (DESIGN §9): one task per shot makes 1–4 candidate images at the project's frame size, with a
 * text-to-image provider (fail-over in order) or, with none, the offline image model (simulated).
 * Vendor URLs are fetched at once (they expire); each image is stored with a small thumbnail.
 */
export const imageStage: MediaStageDefinition<ImageInput, ImageItem, ImageOutput> = {
  kind: 'media',
  key: 'image',
  input: ImageInput,
  reads: ['image'],
  settings: ImageSettings,
  shotSettings: ImageShotSettings,
  providerType: 'text2image',
  local: { name: 'Offline image model', model: 'offline-image', simulated: true },
  itemEvent: 'image',
  defaultInput(ctx) {
    // After a storyboard edit the pipeline redoes only the shots that changed.
    const stage = ctx.stages.find((s) => s.stageType === 'image');
    const staleIds = (stage?.staleShotIds ?? []).filter((id) => ctx.shots.some((s) => s.id === id));
    return stage?.status === 'completed' && !stage.stale && staleIds.length ? { shot_ids: staleIds } : {};
  },
  validate(input, ctx) {
    if (ctx.shots.length === 0) throw new StageInputError('input', 'Generate the storyboard first: images are made per shot');
    const known = new Set(ctx.shots.map((s) => s.id));
    const unknown = input.shot_ids?.find((id) => !known.has(id));
    if (unknown) throw new StageInputError('input.shot_ids', `No shot ${unknown} in this project`);
  },
  beforeStart(input, ctx, providers) {
    const first = providers[0];
    if (!first || first.pricePerUnit <= 0) return;
    const cap = settingsOf(ImageSettings, ctx.project, 'image').budget_cap;
    if (cap === null) return;
    const { images, cost } = estimateOf(shotsOf(input, ctx).length, candidatesOf(input, ctx.project), first.pricePerUnit);
    if (cost > cap) {
      throw new StageInputError('budget_cap', `This run would cost about ${cost} (${images} images × ${first.pricePerUnit}), over the project's budget cap of ${cap}`);
    }
  },
  // Remote vendors take their time per image; the offline model is CPU (librsvg) on a shared machine.
  concurrency: () => 3,
  shots: shotsOf,
  async runShot({ shot, input, ctx, signal, providers, services, progress }) {
    const prompt = imagePromptOf(shot, ctx.project, input.prompt_overrides?.[shot.id]);
    const n = candidatesOf(input, ctx.project);
    const size = frameSize(ctx.project.aspectRatio, ctx.project.resolution);
    const items: ImageItem[] = [];
    if (providers.length === 0) {
      for (let i = 0; i < n; i++) {
        signal.throwIfAborted();
        progress(Math.round((i / n) * 100), 'drawing');
        // The offline model is deterministic per text: a second candidate is seeded by its number.
        const png = await renderOfflineImage({ scene: shot.sceneDescription, narration: shot.narrationText, prompt: i === 0 ? prompt : `${prompt}\n#${i + 1}`, ...size });
        signal.throwIfAborted();
        items.push(await storeImage(services.media, shot, png, { source: 'offline', userId: services.userId, cost: 0 }));
      }
      return items;
    }
    try {
      progress(5, 'generating');
      // Read once, and only when a provider that takes a reference is tried.
      let reference: Promise<string | null> | undefined;
      const referenceOnce = () => (reference ??= referenceImageOf(shot, ctx.project, services.media, input.prompt_overrides?.[shot.id]));
      const { provider, result } = await generateRemote(providers, prompt, size, n, referenceOnce, signal, services, (p) => progress(5, `generating with ${p.name}`));
      progress(70, 'downloading');
      for (const image of result.images) {
        // Vendor URLs expire (OpenAI: 1 h); fetched at once, privately hosted ones only from the provider's own host.
        const bytes =
          'b64' in image
            ? Buffer.from(image.b64, 'base64')
            : (await fetchRemoteMedia(image.url, { allowHostOf: provider.api_url, maxBytes: MAX_IMAGE_BYTES, signal })).bytes;
        items.push(await storeImage(services.media, shot, bytes, { source: 'generated', userId: services.userId, cost: provider.price_per_unit }));
      }
      return items;
    } catch (err) {
      if (signal.aborted) throw err;
      throw shotError(err);
    }
  },
  usage(items, durationMs): RunUsage {
    const cost = items.reduce((sum, i) => sum + (i.cost ?? 0), 0);
    return { prompt_tokens: 0, completion_tokens: 0, estimated: false, ttft_ms: null, duration_ms: durationMs, cost: Math.round(cost * 10_000) / 10_000 };
  },
  output(items, failedShotIds, input, ctx) {
    const previous = (ctx.stages.find((s) => s.stageType === 'image')?.output as ImageOutput | null)?.images ?? [];
    const existing = new Set(ctx.shots.map((s) => s.id));
    const redone = new Set(shotsOf(input, ctx).map((s) => s.id));
    // A run over some shots keeps the other shots' images, and adds its candidates to the ones the
    // shot had (a regenerated shot keeps its pick); a run over every shot starts afresh.
    const kept = previous.filter((img) => existing.has(img.shot_id) && (input.shot_ids ? true : !redone.has(img.shot_id) || failedShotIds.includes(img.shot_id)));
    const order = new Map(ctx.shots.map((s, i) => [s.id, i]));
    const images = [...kept, ...items].sort((a, b) => order.get(a.shot_id)! - order.get(b.shot_id)!);
    const chosen = new Map(ctx.shots.map((s) => [s.id, shotSettingsOf(ImageShotSettings, s, 'image').chosen_image_id]));
    return { images: markChosen(images, chosen), failed_shot_ids: failedShotIds };
  },
  persist: async (_store, _projectId, output) => output,
};
