import type { CreatePromptSetInput, PromptSet, PromptSetDetail, UpdatePromptSetInput } from '@ai-story/contracts';
import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import { promptsApi } from './api';

/** The prompt template sets the user can see (shared ones and their own), for the page and the project header. */
export const usePromptsStore = defineStore('prompts', () => {
  const sets = ref<PromptSet[]>([]);
  const loading = ref(false);
  const loaded = ref(false);
  const error = ref<unknown>(null);

  const shared = computed(() => sets.value.filter((s) => s.shared));
  const mine = computed(() => sets.value.filter((s) => !s.shared));
  const defaultSet = computed(() => sets.value.find((s) => s.is_default) ?? null);

  async function fetch() {
    loading.value = true;
    error.value = null;
    try {
      sets.value = (await promptsApi.sets()).results;
      loaded.value = true;
    } catch (err) {
      error.value = err;
    } finally {
      loading.value = false;
    }
  }

  async function ensureLoaded() {
    if (!loaded.value && !loading.value) await fetch();
  }

  function upsert(set: PromptSet | PromptSetDetail) {
    const { templates: _templates, ...plain } = set as PromptSetDetail;
    const i = sets.value.findIndex((s) => s.id === set.id);
    if (i >= 0) sets.value[i] = plain;
    else sets.value.push(plain);
  }

  async function create(body: CreatePromptSetInput) {
    const set = await promptsApi.createSet(body);
    upsert(set);
    return set;
  }

  async function update(id: string, body: UpdatePromptSetInput) {
    const set = await promptsApi.updateSet(id, body);
    // Marking a default unmarks the previous one: read the list again.
    if (body.is_default) await fetch();
    else upsert(set);
    return set;
  }

  async function remove(id: string) {
    await promptsApi.removeSet(id);
    sets.value = sets.value.filter((s) => s.id !== id);
  }

  return { sets, loading, loaded, error, shared, mine, defaultSet, fetch, ensureLoaded, create, update, remove };
});
