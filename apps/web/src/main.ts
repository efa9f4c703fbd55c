import { createPinia } from 'pinia';
import { createApp } from 'vue';
import 'element-plus/theme-chalk/base.css';
import '@/styles/main.css';
import { setUnauthenticatedHandler } from '@/api/client';
import { useAuthStore } from '@/features/auth/auth.store';
import { i18n } from '@/i18n';
import { router } from '@/router';
import App from './App.vue';

const app = createApp(App);
const pinia = createPinia();
app.use(pinia).use(i18n).use(router);

// A 401 on an ordinary request means the session ended (expired, signed out in another tab):
// go to sign-in and come back here afterwards.
setUnauthenticatedHandler(() => {
  const auth = useAuthStore(pinia);
  if (!auth.user) return;
  auth.forget();
  const current = router.currentRoute.value;
  if (!current.meta.guest) void router.replace({ name: 'login', query: { redirect: current.fullPath, expired: '1' } });
});

app.mount('#app');
