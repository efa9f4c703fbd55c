import {
  ApiToken,
  ChangePasswordBody,
  CreatedToken,
  CreateTokenBody,
  CreateUserBody,
  LoginBody,
  PageQuery,
  RegisterBody,
  Settings,
  SetupBody,
  SetupStatus,
  UpdateSettingsBody,
  UpdateUserBody,
  User,
  paginated,
} from '@ai-story/contracts';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SESSION_COOKIE, currentUser, requireAdmin, setSessionCookie } from './guard.ts';
import { toUser, type AuthService } from './service.ts';

const IdParams = z.object({ id: z.uuid() });
const UserTokenParams = z.object({ id: z.uuid(), token_id: z.uuid() });

export const authRoutes =
  (auth: AuthService, opts: { loginRateLimit: number }): FastifyPluginAsyncZod =>
  async (app) => {
    const signIn = async (req: FastifyRequest, reply: FastifyReply, userId: string) => {
      const { token, expiresAt } = await auth.createSession(userId);
      setSessionCookie(reply, token, expiresAt, req.protocol === 'https');
    };
    const rateLimited = { rateLimit: { max: opts.loginRateLimit, timeWindow: '1 minute' } };

    app.get('/auth/setup', { config: { public: true }, schema: { response: { 200: SetupStatus } } }, () => auth.setupStatus());

    app.post('/auth/setup', { config: { public: true, ...rateLimited }, schema: { body: SetupBody, response: { 201: User } } }, async (req, reply) => {
      const row = await auth.setupFirstAdmin(req.body);
      await signIn(req, reply, row.id);
      return reply.code(201).send(toUser(row));
    });

    app.post('/auth/login', { config: { public: true, ...rateLimited }, schema: { body: LoginBody, response: { 200: User } } }, async (req, reply) => {
      const row = await auth.login(req.body.email, req.body.password);
      await signIn(req, reply, row.id);
      return toUser(row);
    });

    app.post('/auth/register', { config: { public: true, ...rateLimited }, schema: { body: RegisterBody, response: { 201: User } } }, async (req, reply) => {
      const row = await auth.register(req.body);
      await signIn(req, reply, row.id);
      return reply.code(201).send(toUser(row));
    });

    app.post('/auth/logout', { config: { public: true } }, async (req, reply) => {
      const token = req.cookies[SESSION_COOKIE];
      if (token) await auth.logout(token);
      reply.clearCookie(SESSION_COOKIE, { path: '/' });
      return reply.code(204).send();
    });

    app.get('/auth/me', { schema: { response: { 200: User } } }, async (req) => toUser(await auth.getUser(currentUser(req).id)));

    app.post('/auth/password', { config: rateLimited, schema: { body: ChangePasswordBody } }, async (req, reply) => {
      const user = currentUser(req);
      // The session (or token) making the change stays signed in; every other one ends.
      await auth.changePassword(user, req.body.current_password, req.body.new_password, req.credential);
      return reply.code(204).send();
    });

    app.get('/auth/tokens', { schema: { response: { 200: z.array(ApiToken) } } }, (req) => auth.listApiTokens(currentUser(req)));
    app.post('/auth/tokens', { schema: { body: CreateTokenBody, response: { 201: CreatedToken } } }, async (req, reply) =>
      reply.code(201).send(await auth.createApiToken(currentUser(req), req.body.name)),
    );
    app.delete('/auth/tokens/:id', { schema: { params: IdParams } }, async (req, reply) => {
      await auth.revokeApiToken(currentUser(req), req.params.id);
      return reply.code(204).send();
    });

    // ---- admin: users and settings ----
    app.get('/users', { schema: { querystring: PageQuery, response: { 200: paginated(User) } } }, async (req) => {
      requireAdmin(req);
      const { count, rows } = await auth.listUsers(req.query.page, req.query.page_size, req.query.search);
      return { count, results: rows.map(toUser) };
    });
    app.post('/users', { schema: { body: CreateUserBody, response: { 201: User } } }, async (req, reply) => {
      requireAdmin(req);
      return reply.code(201).send(toUser(await auth.createUser(req.body)));
    });
    app.patch('/users/:id', { schema: { params: IdParams, body: UpdateUserBody, response: { 200: User } } }, async (req) =>
      toUser(await auth.updateUser(requireAdmin(req), req.params.id, req.body, req.credential)),
    );
    app.delete('/users/:id', { schema: { params: IdParams } }, async (req, reply) => {
      await auth.deleteUser(requireAdmin(req), req.params.id);
      return reply.code(204).send();
    });
    app.get('/users/:id/tokens', { schema: { params: IdParams, response: { 200: z.array(ApiToken) } } }, async (req) => {
      requireAdmin(req);
      return auth.listTokensOf(req.params.id);
    });
    app.delete('/users/:id/tokens/:token_id', { schema: { params: UserTokenParams } }, async (req, reply) => {
      requireAdmin(req);
      await auth.revokeTokenAsAdmin(req.params.id, req.params.token_id);
      return reply.code(204).send();
    });
    app.get('/settings', { schema: { response: { 200: Settings } } }, async (req) => {
      requireAdmin(req);
      return { allow_registration: await auth.allowRegistration() };
    });
    app.patch('/settings', { schema: { body: UpdateSettingsBody, response: { 200: Settings } } }, async (req) => {
      requireAdmin(req);
      return auth.updateSettings(req.body);
    });
  };
