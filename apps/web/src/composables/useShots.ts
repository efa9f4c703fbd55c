import { UpdateShotBody, type ProjectDetail, type Shot } from '@ai-story/contracts';
import { computed, ref, watch, type Ref } from 'vue';
import { useI18n } from 'vue-i18n';
import { isApiError } from '@/api/client';
import { errorMessage } from '@/composables/useFeedback';
import { useProjectsStore } from '@/features/projects/projects.store';
import { storyboardApi, type SavedShot, type ShotField } from '@/features/storyboard/api';
import { shotsOf } from '@/features/storyboard/shots-text';

export interface UseShotsOptions {
  project: () => ProjectDetail;
  /** Shots a followed run has sent so far (`shot` events), shown while it writes. */
  streamed?: Ref<Shot[]>;
  /** A run is writing: changes elsewhere wait until it ends (it reloads then anyway). */
  paused?: () => boolean;
}

type ShotLike = Pick<Shot, 'sequence_number' | 'duration_seconds' | 'scene_description' | 'narration_text' | 'image_prompt'> & { id?: string };
const signature = (list: ShotLike[] | null | undefined) =>
  JSON.stringify(list?.map((s) => [s.id, s.sequence_number, s.duration_seconds, s.scene_description, s.narration_text, s.image_prompt]));

/**
 * A project's saved shots, as the storyboard and camera tabs both show them: load, add, edit one
 * field, remove, reorder (numbers follow the screen at once, the server's answer confirms them),
 * and load again when the storyboard changed elsewhere (a restore, a teammate's edit).
 */
export function useShots(options: UseShotsOptions) {
  const { t } = useI18n();
  const projects = useProjectsStore();
  const projectId = () => options.project().id;
  const shots = ref<SavedShot[]>([]);
  const loading = ref(true);
  const loadError = ref<unknown>(null);

  async function load() {
    try {
      const res = await storyboardApi.list(projectId());
      shots.value = res.results;
      loadError.value = null;
    } catch (err) {
      loadError.value = err;
    } finally {
      loading.value = false;
    }
  }
  void load();

  /** While a run writes, its shots in order (one card per `shot` event). */
  const streamedShots = computed<Shot[]>(() => [...(options.streamed?.value ?? [])].sort((a, b) => a.sequence_number - b.sequence_number));

  // Our own edits are already on screen, and reloading them would race a drag that starts right after.
  const storyboardOutput = () => options.project().stages.find((s) => s.stage_type === 'storyboard')?.output;
  watch(
    () => signature(shotsOf(storyboardOutput())),
    (next, prev) => {
      if (next !== prev && next !== signature(shots.value) && !options.paused?.()) void load();
    },
  );

  /** Saves one field typed by hand; answers the message to show beside it, or null. */
  async function update(shot: SavedShot, field: ShotField, raw: string): Promise<string | null> {
    const value = field === 'duration_seconds' ? Number(raw.replace(',', '.').replace(/[^\d.]/g, '')) : raw;
    if (field === 'duration_seconds' && (raw.trim() === '' || !Number.isFinite(value))) return t('validation.range', { min: 0.5, max: 120 });
    const checked = UpdateShotBody.safeParse({ [field]: value });
    if (!checked.success) return field === 'duration_seconds' ? t('validation.range', { min: 0.5, max: 120 }) : t('validation.maxLength', { n: 5000 });
    try {
      const saved = await storyboardApi.update(shot.id, { [field]: value });
      const i = shots.value.findIndex((s) => s.id === shot.id);
      if (i >= 0) shots.value[i] = saved;
      return null;
    } catch (err) {
      if (isApiError(err) && Object.keys(err.fields).length) return Object.values(err.fields)[0];
      return errorMessage(err);
    }
  }

  /** Adds an empty shot at the end (the caller reports a failure). */
  async function add(durationSeconds: number): Promise<SavedShot> {
    const shot = await storyboardApi.add(projectId(), { duration_seconds: durationSeconds });
    shots.value = [...shots.value, shot];
    void projects.reloadCurrent();
    return shot;
  }

  async function remove(shot: SavedShot) {
    await storyboardApi.remove(shot.id);
    await load();
    void projects.reloadCurrent();
  }

  /** Puts the shots in this order; on a refusal the previous order comes back and the error is thrown. */
  async function reorder(next: SavedShot[]) {
    const previous = shots.value;
    if (next.map((s) => s.id).join() === previous.map((s) => s.id).join()) return;
    shots.value = next.map((s, i) => ({ ...s, sequence_number: i + 1 }));
    try {
      const res = await storyboardApi.reorder(
        projectId(),
        next.map((s) => s.id),
      );
      shots.value = res.results;
      void projects.reloadCurrent();
    } catch (err) {
      shots.value = previous;
      throw err;
    }
  }

  /** One place up or down. */
  function move(shot: SavedShot, delta: -1 | 1) {
    const i = shots.value.findIndex((s) => s.id === shot.id);
    const j = i + delta;
    if (i < 0 || j < 0 || j >= shots.value.length) return Promise.resolve();
    const next = [...shots.value];
    [next[i], next[j]] = [next[j], next[i]];
    return reorder(next);
  }

  return { shots, loading, loadError, streamedShots, load, update, add, remove, reorder, move };
}

export type Shots = ReturnType<typeof useShots>;
