import { ImageSettings, MAX_IMAGE_BYTES, type Character, type CharacterPicture, type ImageEstimate, type ImageItem, type ImageOutput, type ModelConfig } from '@ai-story/contracts';
import { fileTypeFromBuffer } from 'file-type';
import { sharp } from '../media/sharp.ts';
import type { AuthUser } from '../auth/service.ts';
import type { ShotRow } from '../stages/definition.ts';
import { AppError, conflict, notFound, unavailable } from '../errors.ts';
import type { MediaRepository } from '../media/repository.ts';
import type { MediaStore } from '../media/store.ts';
import type { ProjectRepository } from '../projects/repository.ts';
import type { ProjectService } from '../projects/service.ts';
import { streamChat } from '../providers/llm-client.ts';
import type { ProviderService } from '../providers/service.ts';
import type { RunRepository } from '../runs/repository.ts';
import { settingsOf } from '../stages/definition.ts';
import { candidatesOf, estimateOf, markChosen, storeImage } from '../stages/image.ts';
import { parseJsonOutput } from '../stages/json-output.ts';
import type { StoryboardRepository } from '../storyboard/repository.ts';

export interface ImageServiceDeps {
  projects: ProjectService;
  projectRepo: ProjectRepository;
  storyboards: StoryboardRepository;
  runs: RunRepository;
  providers: ProviderService;
  media: MediaStore;
  mediaRepo: MediaRepository;
}

/** Upload formats: what every browser shows and every image vendor and ffmpeg read. */
const UPLOAD_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp']);
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/**
 * What happens around the 文生图 stage besides its runs: the cost before a run, picking a candidate
 * (an in-place choice, not a new version), uploads checked by content, the project's characters, its
 * disk use and the clean-up of candidates nobody picked.
 */
export class ImageService {
  constructor(private readonly d: ImageServiceDeps) {}

  async estimate(user: AuthUser, projectId: string, q: { provider_id?: string; shots?: number; candidates?: number }): Promise<ImageEstimate> {
    const { project } = await this.d.projects.access(user, projectId, 'view');
    const settings = settingsOf(ImageSettings, project, 'image');
    const shots = q.shots ?? (await this.d.storyboards.shots(projectId)).length;
    const candidates = candidatesOf({ candidates: q.candidates }, project);
    const { order } = await this.d.providers.candidatesFor('text2image', 'image', { providerId: q.provider_id, projectConfig: project.modelConfig as ModelConfig });
    const first = order[0];
    const price = first?.pricePerUnit ?? 0;
    const { images, cost } = estimateOf(shots, candidates, price);
    return {
      shots,
      candidates,
      images,
      price_per_unit: price,
      cost,
      budget_cap: settings.budget_cap,
      within_budget: settings.budget_cap === null || price <= 0 || cost <= settings.budget_cap,
      provider: first ? { id: first.id, name: first.name, model_name: first.modelName, is_simulated: first.isSimulated } : null,
    };
  }

  /** Picks one candidate for its shot: the current output's flags change in place, and the shot remembers it. */
  async choose(user: AuthUser, projectId: string, imageId: string): Promise<ImageOutput> {
    await this.editable(user, projectId);
    const output = await this.currentOutput(projectId);
    const image = output?.images.find((i) => i.id === imageId);
    if (!output || !image) throw notFound('Image');
    await this.rememberChoice(image.shot_id, image.id);
    return this.saveOutput(projectId, { ...output, images: output.images.map((i) => (i.shot_id === image.shot_id ? { ...i, chosen: i.id === image.id } : i)) });
  }

  /** A creator's own picture for a shot: checked by its bytes, stored with a thumbnail, and picked. */
  async upload(user: AuthUser, projectId: string, shotId: string, bytes: Buffer): Promise<ImageItem> {
    await this.editable(user, projectId);
    const shot = await this.d.storyboards.shot(shotId);
    if (!shot || shot.projectId !== projectId) throw notFound('Shot');
    await checkUpload(bytes);
    const item = { ...(await unreadableAs400(storeImage(this.d.media, shot, bytes, { source: 'upload', userId: user.id, cost: 0 }))), chosen: true };
    const output = (await this.currentOutput(projectId)) ?? { images: [], failed_shot_ids: [] };
    const others = output.images.map((i) => (i.shot_id === shotId ? { ...i, chosen: false } : i));
    const shots = await this.d.storyboards.shots(projectId);
    const order = new Map(shots.map((s, i) => [s.id, i]));
    const images = [...others, item].sort((a, b) => (order.get(a.shot_id) ?? 0) - (order.get(b.shot_id) ?? 0));
    await this.rememberChoice(shotId, item.id);
    await this.saveOutput(projectId, { ...output, images, failed_shot_ids: output.failed_shot_ids.filter((id) => id !== shotId) });
    return item;
  }

  async characters(user: AuthUser, projectId: string) {
    const { project } = await this.d.projects.access(user, projectId, 'view');
    return { characters: project.characters ?? [] };
  }

  async setCharacters(user: AuthUser, projectId: string, characters: Character[]) {
    await this.d.projects.allows(user, projectId, 'edit');
    const names = characters.map((c) => c.name);
    if (new Set(names).size !== names.length) throw new AppError(400, 'validation_error', 'Each character needs a name of its own', { fields: { characters: 'Duplicate name' } });
    // A chosen picture is one of this project's images: another project's media is not ours to send to a vendor.
    for (const [i, c] of characters.entries()) {
      if (!c.image_media_id) continue;
      const row = await this.d.mediaRepo.find(c.image_media_id);
      if (!row || row.projectId !== projectId || row.kind !== 'image') {
        throw new AppError(400, 'validation_error', `${c.name}'s picture is not an image of this project`, { fields: { [`characters.${i}.image_media_id`]: 'Not an image of this project' } });
      }
    }
    await this.d.projectRepo.update(projectId, { characters });
    this.d.projects.notifyChange(projectId);
    return { characters };
  }

  /** A character's picture uploaded by the creator: checked by content like a shot's upload; the characters list then names it. */
  async uploadCharacterPicture(user: AuthUser, projectId: string, bytes: Buffer): Promise<CharacterPicture> {
    await this.d.projects.allows(user, projectId, 'edit');
    await checkUpload(bytes);
    const meta = await unreadableAs400(sharp(bytes).metadata());
    if (!meta.width || !meta.height) throw unreadable();
    const row = await this.d.media.put(projectId, bytes, { kind: 'image', width: meta.width, height: meta.height, source: 'upload', createdBy: user.id });
    return { media_id: row.id, url: this.d.media.urlOf(row.id), width: meta.width, height: meta.height };
  }

  /**
   * Characters proposed by the project's LLM from the storyboard (or the topic): name + look pairs.
   * Only when no LLM provider is available are the names the shots repeat offered instead, with an
   * empty look, and the answer says so; a model that fails or answers no list is an error to show.
   */
  async suggestCharacters(user: AuthUser, projectId: string): Promise<{ characters: Character[]; method: 'model' | 'names'; message: string }> {
    const { project } = await this.d.projects.access(user, projectId, 'edit');
    const shots = await this.d.storyboards.shots(projectId);
    const story = shots.map((s) => `${s.sequenceNumber}. ${s.sceneDescription} ${s.narrationText}`).join('\n') || project.originalTopic;
    if (!story.trim()) throw new AppError(400, 'validation_error', 'Write the story or the storyboard first', { fields: { story: 'Empty' } });
    const { order } = await this.d.providers.candidatesFor('llm', 'storyboard', { projectConfig: project.modelConfig as ModelConfig });
    if (!order[0]) return { characters: namesFrom(shots), method: 'names', message: 'No language model is available; these are names the storyboard repeats — describe their look' };
    const provider = await this.d.providers.clientProvider(order[0]);
    let text: string;
    try {
      const answer = await streamChat({
        provider: { ...provider, max_tokens: 800 },
        response_format: 'json_object',
        signal: AbortSignal.timeout(60_000),
        messages: [
          { role: 'system', content: CHARACTER_PROMPT },
          { role: 'user', content: story.slice(0, 8_000) },
        ],
      });
      text = answer.text;
    } catch (err) {
      throw unavailable(`${provider.name} could not propose characters: ${err instanceof Error ? err.message : String(err)}`, 5);
    }
    const parsed = parseCharacters(text);
    if (!parsed) throw unavailable(`${provider.name} answered without a character list; try again or another model`, 5);
    return { characters: parsed, method: 'model', message: `Proposed by ${provider.name}` };
  }

  /** Bytes the project's media take, and what a clean-up would free. */
  async usage(user: AuthUser, projectId: string) {
    await this.d.projects.allows(user, projectId, 'view');
    const use = await this.d.mediaRepo.diskUse(projectId);
    const unpicked = await this.unpickedRows(projectId, await this.currentOutput(projectId));
    return { ...use, unpicked: { rows: unpicked.length, bytes: unpicked.reduce((a, r) => a + r.bytes, 0) } };
  }

  /**
   * Deletes the image rows no current output uses: candidates not picked (they leave the current
   * output) and images only past runs referred to. A file goes only when no row keeps its bytes.
   */
  async cleanUp(user: AuthUser, projectId: string) {
    await this.editable(user, projectId);
    const output = await this.currentOutput(projectId);
    const kept = output ? { ...output, images: output.images.filter((i) => i.chosen) } : null;
    if (output && kept) await this.saveOutput(projectId, kept);
    const rows = await this.unpickedRows(projectId, kept);
    const freed = await this.d.media.remove(rows);
    return { removed_rows: freed.removedRows, removed_files: freed.removedFiles, freed_bytes: freed.freedBytes };
  }

  private async unpickedRows(projectId: string, imageOutput: ImageOutput | null) {
    const referenced = new Set<string>();
    const stages = await this.d.projectRepo.stages(projectId);
    for (const s of stages) {
      if (s.stageType === 'image' || !s.output) continue;
      for (const id of JSON.stringify(s.output).match(UUID) ?? []) referenced.add(id);
    }
    for (const img of imageOutput?.images.filter((i) => i.chosen) ?? []) {
      referenced.add(img.media_id);
      for (const id of img.thumb_url?.match(UUID) ?? []) referenced.add(id);
    }
    const { project } = { project: await this.d.projectRepo.findById(projectId) };
    for (const c of project?.characters ?? []) if (c.image_media_id) referenced.add(c.image_media_id);
    return (await this.d.mediaRepo.ofProject(projectId, 'image')).filter((r) => !referenced.has(r.id));
  }

  private async editable(user: AuthUser, projectId: string) {
    await this.d.projects.allows(user, projectId, 'edit');
    // A run in progress writes the output when it ends, from the choices it read at its start.
    const active = await this.d.runs.findActive(projectId, 'image');
    if (active) throw conflict('Wait for the image generation to finish, or stop it first', { active_run_id: active.id });
  }

  private async currentOutput(projectId: string) {
    return ((await this.d.projectRepo.stage(projectId, 'image'))?.output as ImageOutput | null) ?? null;
  }

  private async saveOutput(projectId: string, output: ImageOutput) {
    const shots = await this.d.storyboards.shots(projectId);
    const chosen = new Map(shots.map((s) => [s.id, (s.mediaSettings?.image?.chosen_image_id as string | null | undefined) ?? null]));
    const saved = { ...output, images: markChosen(output.images, chosen) };
    await this.d.projectRepo.updateStage(projectId, 'image', { output: saved });
    this.d.projects.notifyChange(projectId);
    return saved;
  }

  private async rememberChoice(shotId: string, imageId: string) {
    const shot = await this.d.storyboards.shot(shotId);
    if (!shot) return;
    await this.d.storyboards.update(shotId, { mediaSettings: { ...(shot.mediaSettings ?? {}), image: { ...(shot.mediaSettings?.image ?? {}), chosen_image_id: imageId } } });
  }
}

/** An upload is a PNG, JPEG or WebP by its bytes (not its name), at most MAX_IMAGE_BYTES. */
async function checkUpload(bytes: Buffer) {
  if (bytes.length > MAX_IMAGE_BYTES) throw new AppError(413, 'payload_too_large', `An image may be at most ${MAX_IMAGE_BYTES / 1024 / 1024} MB`);
  const type = await fileTypeFromBuffer(bytes);
  if (!type || !UPLOAD_TYPES.has(type.mime)) {
    const what = type ? type.mime : 'not an image this studio reads';
    throw new AppError(400, 'validation_error', `Upload a PNG, JPEG or WebP image (this file is ${what})`, { fields: { file: 'PNG, JPEG or WebP only' } });
  }
}

const unreadable = () => new AppError(400, 'validation_error', 'The image could not be read (damaged file?)', { fields: { file: 'Unreadable image' } });
/** A file with the right signature whose pixels cannot be decoded is the sender's fault, not ours. */
const unreadableAs400 = <T>(p: Promise<T>) => p.catch(() => { throw unreadable(); });

/** Asks for JSON a parser can check; the example shows the shape and the kind of look wanted. */
const CHARACTER_PROMPT =
  '你是故事的美术指导。列出故事里出场的角色（characters），每个给出一句固定的外貌描述（年龄、发型、衣着），让每个镜头里的同一角色看起来一样。只输出 JSON：{"characters":[{"name":"老人","look":"白发、深蓝毛衣"}]}';

/** The model's list, or null when its answer holds none (an empty list is an answer: no recurring characters). */
function parseCharacters(text: string): Character[] | null {
  let value: unknown;
  try {
    value = parseJsonOutput(text);
  } catch {
    return null;
  }
  const list = (value as { characters?: unknown } | null)?.characters;
  if (!Array.isArray(list)) return null;
  const seen = new Set<string>();
  return list
    .filter((c): c is { name: string; look?: unknown } => !!c && typeof c === 'object' && typeof (c as { name?: unknown }).name === 'string')
    .map((c) => ({ name: c.name.trim().slice(0, 50), look: typeof c.look === 'string' ? c.look.trim().slice(0, 500) : '' }))
    .filter((c) => c.name && !seen.has(c.name) && seen.add(c.name))
    .slice(0, 12);
}

/** Who a story is about, without a model: kinship words and people nouns, and the speakers the storyboard names, that appear in two shots or more. */
const PEOPLE = /(老人|老奶奶|老爷爷|奶奶|爷爷|外婆|外公|妈妈|母亲|爸爸|父亲|女孩|小女孩|男孩|小男孩|少年|少女|姑娘|老师|医生|警察|士兵|国王|公主|王子|猎人|渔夫|船长|孩子|妻子|丈夫|哥哥|姐姐|弟弟|妹妹)/g;

export function namesFrom(shots: Pick<ShotRow, 'sceneDescription' | 'narrationText' | 'speaker'>[]): Character[] {
  const seen = new Map<string, number>();
  for (const s of shots) {
    const found = new Set([...`${s.sceneDescription}${s.narrationText}`.matchAll(PEOPLE)].map((m) => m[0]));
    if (s.speaker) found.add(s.speaker);
    for (const name of found) seen.set(name, (seen.get(name) ?? 0) + 1);
  }
  // "小女孩" also matches "女孩": keep the longer name when both are there equally often.
  const names = [...seen].filter(([, n]) => n >= 2 || shots.length < 3).map(([name]) => name);
  return names.filter((n) => !names.some((o) => o !== n && o.includes(n))).slice(0, 8).map((name) => ({ name, look: '' }));
}
