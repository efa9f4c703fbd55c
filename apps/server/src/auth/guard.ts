import type { FastifyInstance, FastifyPluginAsync, FastifyPluginCallback, FastifyPluginOptions, FastifyReply, FastifyRequest } from 'fastify';
import { forbidden, unauthenticated } from '../errors.ts';
import type { AuthService, AuthUser, Credential } from './service.ts';

export const SESSION_COOKIE = 'ai_story_session';

declare module 'fastify' {
  interface FastifyRequest {
    user: AuthUser | null;
    authVia: 'cookie' | 'token' | 'machine' | null;
    /** The session or token this request came with (a password change keeps it; live streams are filed under it). */
    credential: Credential | null;
    /** How many credentials had ended (LiveStreams.endingCount) when this one was checked: a stream opened later asks whether it ended since. */
    endingsBefore: number;
  }
  interface FastifyContextConfig {
    /** Routes anyone may call (setup, login, health, the web app's files). Every other route needs a user. */
    public?: boolean;
    /**
     * A route that a machine may also call with a secret of its own instead of a user's credential (the
     * metrics scraper's METRICS_TOKEN): true when the Bearer value is that secret. Anything else still
     * needs a user, as on every route.
     */
    machineToken?: (bearer: string) => boolean;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Authenticates every routed request (cookie session or Bearer token) and refuses cookie-authenticated
 * writes that could come from another site (CSRF): a browser always sends Sec-Fetch-Site or Origin
 * on such requests; Bearer requests are exempt because a foreign site cannot attach the header.
 *
 * Default deny, decided on the matched route and never on the raw URL (`/%61pi/v1/…` routes to the
 * API while its text does not start with `/api/`): a route is public only if its config says so.
 * Register this before any route, so that its hook runs on every one.
 */
export function registerAuthGuard(app: FastifyInstance, auth: AuthService) {
  app.decorateRequest('user', null);
  app.decorateRequest('authVia', null);
  app.decorateRequest('credential', null);
  app.decorateRequest('endingsBefore', 0);

  app.addHook('onRequest', async (req: FastifyRequest) => {
    if (req.is404) return; // nothing was routed: the not-found handler answers and reveals nothing
    req.endingsBefore = auth.endingCount;
    const bearer = req.headers.authorization?.match(/^Bearer\s+(\S+)$/i)?.[1];
    if (bearer && req.routeOptions.config?.machineToken?.(bearer)) {
      req.authVia = 'machine';
      return;
    }
    if (bearer) {
      const found = await auth.userForApiToken(bearer);
      if (!found) throw unauthenticated('Invalid or revoked API token');
      req.user = found.user;
      req.credential = found.credential;
      req.authVia = 'token';
    } else {
      const session = req.cookies[SESSION_COOKIE];
      const found = session ? await auth.userForSession(session) : null;
      if (found) {
        req.user = found.user;
        req.credential = found.credential;
        req.authVia = 'cookie';
      }
      if (!SAFE_METHODS.has(req.method) && !isSameOrigin(req)) {
        throw forbidden('Cross-site request refused');
      }
    }
    if (!req.user && req.routeOptions.config?.public !== true) throw unauthenticated();
  });
}

/**
 * Registers a plugin whose routes are all public (the web app's files, the API docs): an explicit mark
 * on each of its routes, so the guard's default stays deny.
 */
export const publicly =
  <O extends FastifyPluginOptions>(plugin: FastifyPluginAsync<O> | FastifyPluginCallback<O>, opts: O): FastifyPluginAsync =>
  async (scope) => {
    scope.addHook('onRoute', (route) => {
      route.config = { ...route.config, public: true };
    });
    await scope.register(plugin as FastifyPluginAsync<O>, opts);
  };

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
