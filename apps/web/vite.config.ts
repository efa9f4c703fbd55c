import { fileURLToPath, URL } from 'node:url';
import vue from '@vitejs/plugin-vue';
import Components from 'unplugin-vue-components/vite';
import { ElementPlusResolver } from 'unplugin-vue-components/resolvers';
import { defineConfig } from 'vite';

// The studio API in development; the built app is served by the API itself (same origin).
const apiTarget = process.env.AI_STORY_API ?? 'http://127.0.0.1:3000';

// The API refuses cookie-authenticated writes whose Origin is another host (CSRF guard).
// Behind the dev proxy the browser's origin is the Vite server, so present the API's own origin.
const proxyTo = {
  target: apiTarget,
  changeOrigin: true,
  configure: (proxy: { on: (event: 'proxyReq', cb: (req: { setHeader(name: string, value: string): void; getHeader(name: string): unknown }) => void) => void }) => {
    proxy.on('proxyReq', (req) => {
      if (req.getHeader('origin')) req.setHeader('origin', new URL(apiTarget).origin);
    });
  },
};

export default defineConfig({
  plugins: [
    vue(),
    // Element Plus per component (the full library is a 1 MB bundle): only what templates use is imported.
    Components({
      dts: 'src/components.d.ts',
      dirs: [],
      resolvers: [ElementPlusResolver({ importStyle: 'css' })],
    }),
  ],
  define: {
    // vue-i18n build flags: composition API only, no devtools hooks in production.
    __VUE_I18N_FULL_INSTALL__: true,
    __VUE_I18N_LEGACY_API__: false,
    __INTLIFY_PROD_DEVTOOLS__: false,
  },
  resolve: {
    alias: [
      { find: '@', replacement: fileURLToPath(new URL('./src', import.meta.url)) },
      // vuedraggable's package entry is a UMD build carrying its own core-js polyfills (~100 kB);
      // its ES source is the same component without them.
      { find: /^vuedraggable$/, replacement: 'vuedraggable/src/vuedraggable.js' },
    ],
  },
  server: {
    proxy: {
      '/api': proxyTo,
      '/healthz': proxyTo,
      '/docs': proxyTo,
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 800,
  },
});
