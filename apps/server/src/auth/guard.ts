import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { forbidden, unauthenticated } from '../errors.ts';
import type { AuthService, AuthUser } from './service.ts';

export const SESSION_COOKIE = 'ai_story_session';

declare module 'fastify' {
  interface FastifyRequest {
    user: AuthUser | null;
    authVia: 'cookie' | 'token' | null;
  }
  interface FastifyContextConfig {
    /** Routes anyone may call (setup, login, health). Everything else under /api needs a user. */
    public?: boolean;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Authenticates every /api request (cookie session or Bearer token) and refuses cookie-authenticated
 * writes that could come from another site (CSRF): a browser always sends Sec-Fetch-Site or Origin
 * on such requests; Bearer requests are exempt because a foreign site cannot attach the header.
 */
export function registerAuthGuard(app: FastifyInstance, auth: AuthService) {
  app.decorateRequest('user', null);
  app.decorateRequest('authVia', null);

  app.addHook('onRequest', async (req: FastifyRequest) => {
    if (!req.url.startsWith('/api/')) return;
    const bearer = req.headers.authorization?.match(/^Bearer\s+(\S+)$/i)?.[1];
    if (bearer) {
      req.user = await auth.userForApiToken(bearer);
      if (!req.user) throw unauthenticated('Invalid or revoked API token');
      req.authVia = 'token';
    } else {
      const session = req.cookies[SESSION_COOKIE];
      if (session) {
        req.user = await auth.userForSession(session);
        if (req.user) req.authVia = 'cookie';
      }
      if (!SAFE_METHODS.has(req.method) && !isSameOrigin(req)) {
        throw forbidden('Cross-site request refused');
      }
    }
    if (!req.user && !req.routeOptions.config?.public) throw unauthenticated();
  });
}

function isSameOrigin(req: FastifyRequest): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.headers.origin;
  if (!origin) return true; // not a browser-initiated cross-origin request
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

export function currentUser(req: FastifyRequest): AuthUser {
  if (!req.user) throw unauthenticated();
  return req.user;
}

export function requireAdmin(req: FastifyRequest): AuthUser {
  const user = currentUser(req);
  if (user.role !== 'admin') throw forbidden('Only an admin can do this');
  return user;
}

export function setSessionCookie(reply: FastifyReply, token: string, expires: Date, secure: boolean) {
  reply.setCookie(SESSION_COOKIE, token, { httpOnly: true, sameSite: 'lax', secure, path: '/', expires });
}
