import type { CreateProviderInput, Provider, ProviderSummary, ProviderTestResponse, ProviderUsageResponse, UpdateProviderInput } from '@ai-story/contracts';
import { defineStore } from 'pinia';
import { computed, reactive, ref } from 'vue';
import { isFullProvider, providersApi } from './api';

export const USAGE_DAYS = 14;

export const useProvidersStore = defineStore('providers', () => {
  const items = ref<(Provider | ProviderSummary)[]>([]);
  const loading = ref(false);
  const loaded = ref(false);
  const error = ref<unknown>(null);
  const usage = reactive<Record<string, ProviderUsageResponse | undefined>>({});
  const testing = reactive<Record<string, boolean>>({});

  /** Full providers (what an admin sees); empty for others. */
  const providers = computed(() => items.value.filter(isFullProvider));
  /** What a run can use: active LLM providers, in the server's order. */
  const llmChoices = computed(() =>
    items.value.filter((p) => p.provider_type === 'llm' && (!isFullProvider(p) || p.is_active)),
  );

  async function fetch() {
    loading.value = true;
    error.value = null;
    try {
      items.value = await providersApi.list();
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

  async function fetchUsage(id: string) {
    try {
      usage[id] = await providersApi.usage(id, USAGE_DAYS);
    } catch {
      usage[id] = undefined; // the chart shows "no calls"; usage is a nicety, not worth an error toast
    }
  }

  function replace(provider: Provider) {
    const i = items.value.findIndex((p) => p.id === provider.id);
    if (i >= 0) items.value[i] = provider;
    else items.value.push(provider);
  }

  async function create(body: CreateProviderInput) {
    const provider = await providersApi.create(body);
    replace(provider);
    void fetchUsage(provider.id);
    return provider;
  }

  async function update(id: string, body: UpdateProviderInput) {
    const provider = await providersApi.update(id, body);
    replace(provider);
    return provider;
  }

  async function remove(id: string) {
    await providersApi.remove(id);
    items.value = items.value.filter((p) => p.id !== id);
    delete usage[id];
  }

  async function test(id: string): Promise<ProviderTestResponse> {
    testing[id] = true;
    try {
      const result = await providersApi.test(id);
      const p = items.value.find((x) => x.id === id);
      if (p && isFullProvider(p)) p.last_test = { ...result, tested_at: new Date().toISOString() };
      return result;
    } finally {
      testing[id] = false;
    }
  }

  return { items, providers, llmChoices, loading, loaded, error, usage, testing, fetch, ensureLoaded, fetchUsage, create, update, remove, test };
});
