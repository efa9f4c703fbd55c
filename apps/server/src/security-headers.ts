import type { FastifyInstance } from 'fastify';
import helmet from 'helmet';

/**
 * The browser-side guards of every answer (issue 15, finding 7), set by helmet rather than by hand.
 * The built web app loads only its own module scripts, so scripts are 'self' only — never inline.
 * Element Plus (and the /docs page) position popups with inline `style` attributes, hence
 * 'unsafe-inline' for styles alone. Media (images, clips, speech) come from our own routes; a
 * preview may be a blob: URL, an icon a data: URL. No page may frame the studio (clickjacking).
 */
const CONTENT_SECURITY_POLICY = {
  useDefaults: false,
  directives: {
    defaultSrc: ["'self'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'", "'unsafe-inline'"],
    imgSrc: ["'self'", 'data:', 'blob:'],
    mediaSrc: ["'self'", 'blob:'],
    fontSrc: ["'self'", 'data:'],
    connectSrc: ["'self'"],
    objectSrc: ["'none'"],
    baseUri: ["'self'"],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
  },
};

export async function registerSecurityHeaders(app: FastifyInstance) {
  // Built once: @fastify/helmet 13 builds helmet's middleware, CSP parsing included, on every request
  // (about a tenth of what a small answer costs the studio).
  const setHeaders = helmet({
    contentSecurityPolicy: CONTENT_SECURITY_POLICY,
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    // The studio is often reached over plain http on a LAN: upgrading its requests would break it,
    // and HSTS belongs to the TLS proxy in front of it, which knows the host names.
    strictTransportSecurity: false,
  });
  app.addHook('onRequest', (req, reply, done) => setHeaders(req.raw, reply.raw, (err) => done(err as Error | undefined)));
  // API answers hold a user's data: no cache (a shared proxy's or the browser's back button) keeps
  // them. Routes that set their own policy keep it: media is private and immutable (DESIGN §9);
  // event streams write `no-cache` themselves on the raw response.
  app.addHook('onSend', async (req, reply) => {
    if (reply.hasHeader('cache-control')) return;
    const api = (req.routeOptions.url ?? req.url).startsWith('/api/');
    const json = String(reply.getHeader('content-type') ?? '').startsWith('application/json');
    if (api || json) reply.header('cache-control', 'no-store');
  });
}
