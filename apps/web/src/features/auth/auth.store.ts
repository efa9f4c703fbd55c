import type { LoginInput, RegisterInput, SetupInput, SetupStatusResponse, User } from '@ai-story/contracts';
import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import { isApiError } from '@/api/client';
import { authApi } from './api';

export const useAuthStore = defineStore('auth', () => {
  const user = ref<User | null>(null);
  const setup = ref<SetupStatusResponse | null>(null);
  let loading: Promise<void> | null = null;

  const isAdmin = computed(() => user.value?.role === 'admin');
  const needsSetup = computed(() => setup.value?.needs_setup === true);
  const allowRegistration = computed(() => setup.value?.allow_registration === true);

  async function refreshSetup() {
    setup.value = await authApi.setupStatus();
  }

  /** Who is signed in (once per page load; the router awaits it before the first navigation). */
  function ensureLoaded(): Promise<void> {
    loading ??= (async () => {
      await refreshSetup();
      if (setup.value?.needs_setup) return;
      try {
        user.value = await authApi.me();
      } catch (err) {
        if (!isApiError(err) || err.status !== 401) throw err;
        user.value = null;
      }
    })().catch((err) => {
      loading = null; // let the next navigation try again
      throw err;
    });
    return loading;
  }

  async function completeSetup(body: SetupInput) {
    user.value = await authApi.setup(body);
    setup.value = { needs_setup: false, allow_registration: setup.value?.allow_registration ?? false };
  }

  async function login(body: LoginInput) {
    user.value = await authApi.login(body);
  }

  async function register(body: RegisterInput) {
    user.value = await authApi.register(body);
  }

  async function logout() {
    try {
      await authApi.logout();
    } finally {
      forget();
    }
  }

  /** The session ended elsewhere (401 on a request): drop what we know about the user. */
  function forget() {
    user.value = null;
  }

  return { user, setup, isAdmin, needsSetup, allowRegistration, ensureLoaded, refreshSetup, completeSetup, login, register, logout, forget };
});
