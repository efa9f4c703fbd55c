import { STAGE_KEYS } from '@ai-story/contracts';
import { createRouter, createWebHistory, type RouteLocationNormalized } from 'vue-router';
import { useAuthStore } from '@/features/auth/auth.store';

declare module 'vue-router' {
  interface RouteMeta {
    /** Reachable signed out (setup, sign in, register). */
    guest?: boolean;
    admin?: boolean;
    /** i18n key of the page title. */
    title?: string;
  }
}

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/setup', name: 'setup', component: () => import('@/features/auth/views/SetupView.vue'), meta: { guest: true, title: 'auth.setup.title' } },
    { path: '/login', name: 'login', component: () => import('@/features/auth/views/LoginView.vue'), meta: { guest: true, title: 'auth.login.title' } },
    { path: '/register', name: 'register', component: () => import('@/features/auth/views/RegisterView.vue'), meta: { guest: true, title: 'auth.register.title' } },
    {
      path: '/',
      component: () => import('@/components/AppShell.vue'),
      children: [
        { path: '', redirect: { name: 'projects' } },
        { path: 'projects', name: 'projects', component: () => import('@/features/projects/views/ProjectListView.vue'), meta: { title: 'nav.projects' } },
        {
          path: `projects/:id/:stage(${STAGE_KEYS.join('|')})?`,
          name: 'project',
          component: () => import('@/features/projects/views/ProjectDetailView.vue'),
        },
        { path: 'prompts/:setId?', name: 'prompts', component: () => import('@/features/prompts/views/PromptsView.vue'), meta: { title: 'prompts.title' } },
        { path: 'providers', name: 'providers', component: () => import('@/features/providers/views/ProvidersView.vue'), meta: { admin: true, title: 'nav.providers' } },
        { path: 'users', name: 'users', component: () => import('@/features/users/views/UsersView.vue'), meta: { admin: true, title: 'nav.users' } },
        { path: 'account', name: 'account', component: () => import('@/features/auth/views/AccountView.vue'), meta: { title: 'nav.account' } },
        { path: ':pathMatch(.*)*', name: 'not-found', component: () => import('@/components/NotFoundView.vue'), meta: { title: 'notFound.title' } },
      ],
    },
  ],
  scrollBehavior: (to, from, saved) => saved ?? (to.name === from.name ? undefined : { top: 0 }),
});

function safeRedirect(to: RouteLocationNormalized): string | undefined {
  const r = to.query.redirect;
  return typeof r === 'string' && r.startsWith('/') && !r.startsWith('//') ? r : undefined;
}

router.beforeEach(async (to) => {
  const auth = useAuthStore();
  try {
    await auth.ensureLoaded();
  } catch {
    // The API is unreachable: let the page render; its own requests will say so.
    return true;
  }
  if (auth.needsSetup) return to.name === 'setup' ? true : { name: 'setup' };
  if (to.name === 'setup') return { name: auth.user ? 'projects' : 'login' };
  if (to.meta.guest) return auth.user ? (safeRedirect(to) ?? { name: 'projects' }) : true;
  if (!auth.user) return { name: 'login', query: to.fullPath !== '/' && to.fullPath !== '/projects' ? { redirect: to.fullPath } : {} };
  if (to.meta.admin && !auth.isAdmin) return { name: 'projects' };
  return true;
});

export { safeRedirect };
