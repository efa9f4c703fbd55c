import type { CreateUserInput, Role, User } from '@ai-story/contracts';
import { defineStore } from 'pinia';
import { ref } from 'vue';
import { usersApi } from './api';

export const USERS_PAGE_SIZE = 20;

export const useUsersStore = defineStore('users', () => {
  const users = ref<User[]>([]);
  const count = ref(0);
  const page = ref(1);
  const search = ref('');
  const loading = ref(false);
  const error = ref<unknown>(null);
  const allowRegistration = ref<boolean | null>(null);

  async function fetch() {
    loading.value = true;
    error.value = null;
    try {
      const res = await usersApi.list({ page: page.value, page_size: USERS_PAGE_SIZE, search: search.value.trim() || undefined });
      users.value = res.results;
      count.value = res.count;
    } catch (err) {
      error.value = err;
    } finally {
      loading.value = false;
    }
  }

  async function fetchSettings() {
    allowRegistration.value = (await usersApi.settings()).allow_registration;
  }

  async function setAllowRegistration(value: boolean) {
    allowRegistration.value = (await usersApi.updateSettings({ allow_registration: value })).allow_registration;
  }

  async function create(body: CreateUserInput) {
    const user = await usersApi.create(body);
    await fetch();
    return user;
  }

  async function setRole(id: string, role: Role) {
    const user = await usersApi.update(id, { role });
    const i = users.value.findIndex((u) => u.id === id);
    if (i >= 0) users.value[i] = user;
    return user;
  }

  async function remove(id: string) {
    await usersApi.remove(id);
    await fetch();
  }

  return { users, count, page, search, loading, error, allowRegistration, fetch, fetchSettings, setAllowRegistration, create, setRole, remove };
});
