import { existsSync } from 'node:fs';
import path from 'node:path';
import fastifyCookie from '@fastify/cookie';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyError, type FastifyInstance, type RouteOptions } from 'fastify';
import { hasZodFastifySchemaValidationErrors, jsonSchemaTransform, serializerCompiler } from 'fastify-type-provider-zod';
import { publicly, registerAuthGuard } from './auth/guard.ts';
import { CREDENTIAL_MEMORY_MS, KnownCredentials } from './auth/known-credentials.ts';
import { LiveStreams } from './auth/live-streams.ts';
import { AuthRepository } from './auth/repository.ts';
import { authRoutes } from './auth/routes.ts';
import { AuthService } from './auth/service.ts';
import type { Config } from './config.ts';
import { Cipher } from './crypto/cipher.ts';
import { openDatabase, type Database } from './db/client.ts';
import { InstanceLease } from './instances/lease.ts';
import { InstanceRepository } from './instances/repository.ts';
import { AppError } from './errors.ts';
import { exportRoutes } from './export/routes.ts';
import { loggerOptions } from './logger.ts';
import { StudioMetrics } from './metrics/metrics.ts';
import { metricsRoutes } from './metrics/routes.ts';
import { pipelineRoutes } from './pipeline/routes.ts';
import { PipelineService } from './pipeline/service.ts';
import { ProjectRepository } from './projects/repository.ts';
import { projectRoutes } from './projects/routes.ts';
import { ProjectService } from './projects/service.ts';
import { TemplateRenderer } from './prompts/render-pool.ts';
import { PromptRepository } from './prompts/repository.ts';
import { promptRoutes } from './prompts/routes.ts';
import { PromptService } from './prompts/service.ts';
import { LlmStreamThread } from './providers/llm-stream-thread.ts';
import { OfflineDemoUpstream } from './providers/offline-demo.ts';
import { ProviderRepository } from './providers/repository.ts';
import { providerRoutes } from './providers/routes.ts';
import { RedisProviderSelector } from './providers/redis-selector.ts';
import { ProviderSelector, type ProviderLimiter } from './providers/selector.ts';
import { ProviderService, type ClientProvider, type MediaUsage } from './providers/service.ts';
import { InMemoryEventLog, type EventLog } from './runs/event-log.ts';
import { RedisRunEvents } from './runs/redis-events.ts';
import { validatorCompiler } from './request-validation.ts';
import { RunRepository } from './runs/repository.ts';
import { registerSecurityHeaders } from './security-headers.ts';
import { runRoutes } from './runs/routes.ts';
import { RunPublisher } from './runs/publisher.ts';
import { RunService } from './runs/service.ts';
import { findMediaTools, killAllMediaProcesses } from './media/ffmpeg.ts';
import { RenderQueue } from './media/render-queue.ts';
import { MediaRepository } from './media/repository.ts';
import { mediaRoutes } from './media/routes.ts';
import { narrationRoutes } from './narration/routes.ts';
import { NarrationService } from './narration/service.ts';
import { MediaStore } from './media/store.ts';
import { imageRoutes } from './images/routes.ts';
import { ImageService } from './images/service.ts';
import type { StageDefinition } from './stages/definition.ts';
import { StageSettingsService } from './stages/settings.ts';
import type { StageKey } from '@ai-story/contracts';
import { RunStreams } from './runs/streams.ts';
import { assertRedisReachable, connectRedis } from './redis/connection.ts';
import { RunQueue, RunWorker } from './runs/run-queue.ts';
import { StoryboardRepository } from './storyboard/repository.ts';
import { storyboardRoutes } from './storyboard/routes.ts';
import { StoryboardService } from './storyboard/service.ts';

export interface BuildOptions {
  /** An already-open database (tests); otherwise opened from the config. */
  database?: Database;
  /** A pino destination stream (tests capture log lines with it). */
  logStream?: NodeJS.WritableStream;
  /** Stages beside the shipped ones (tests prove the engine with a media stage of their own). */
  stages?: Partial<Record<StageKey, StageDefinition>>;
  /**
   * Called when another studio took this instance's database lease over (after it expired in a long
   * outage); this instance's runs are already stopped. main.ts exits: the process must not go on.
   */
  onLeaseLost?: () => void;
  /** Sees every route as it is added, with its schemas (tests walk the route table). */
  onRoute?: (route: RouteOptions) => void;
  /**
   * `worker` (`npm run worker`, RUNS_IN=workers): executes the runs API instances queue, and serves only
   * /healthz and /metrics. Default `api`: the studio itself.
   */
  role?: 'api' | 'worker';
}

export interface Services {
  database: Database;
  cipher: Cipher;
  auth: AuthService;
  projects: ProjectService;
  providers: ProviderService;
  prompts: PromptService;
  renderer: TemplateRenderer;
  runs: RunService;
  media: MediaStore;
  metrics: StudioMetrics;
}

declare module 'fastify' {
  interface FastifyInstance {
    services: Services;
  }
}

/** Builds the whole studio as one Fastify instance; main.ts only listens, tests inject or listen on port 0. */
export async function buildApp(config: Config, opts: BuildOptions = {}): Promise<FastifyInstance> {
  if (config.redisUrl) await assertRedisReachable(config.redisUrl, 10_000);
  const database = opts.database ?? (await openDatabase(config));
  const app = Fastify({
    logger: loggerOptions(config.logLevel, opts.logStream),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    bodyLimit: 1024 * 1024,
    // Behind a TLS proxy: req.protocol and req.ip come from its X-Forwarded-* headers (Secure cookies).
    trustProxy: config.trustProxy,
  });
  if (opts.onRoute) app.addHook('onRoute', opts.onRoute);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // First of all, before any run is touched: this instance's lease (a second studio stops here).
  let lease: InstanceLease;
  try {
    lease = await InstanceLease.acquire(new InstanceRepository(database.leaseDb), {
      mode: database.kind === 'pglite' ? 'sole' : config.redisUrl ? 'shared' : 'single',
      leaseMs: config.instanceLeaseMs,
      log: app.log,
    });
  } catch (err) {
    if (!opts.database) await database.close();
    throw err;
  }

  const cipher = new Cipher(config.appSecret);
  const authRepo = new AuthRepository(database.db, database.readDb);
  const liveStreams = new LiveStreams();
  const knownCredentials = new KnownCredentials(CREDENTIAL_MEMORY_MS);
  const auth = new AuthService(authRepo, liveStreams, knownCredentials);
  const projectRepo = new ProjectRepository(database.db, database.readDb);
  const projects = new ProjectService(projectRepo);
  const renderer = new TemplateRenderer();
  const prompts = new PromptService(new PromptRepository(database.db, database.readDb), projects, renderer);
  const demo = new OfflineDemoUpstream();
  // Scale-out mode: provider limits, cool-downs and loads are shared by every instance through Redis.
  const limitsRedis = config.redisUrl ? connectRedis({ url: config.redisUrl, prefix: config.redisPrefix, name: 'limits' }) : null;
  const selector: ProviderLimiter = limitsRedis
    ? new RedisProviderSelector(limitsRedis, { onError: (err) => app.log.warn({ err }, 'could not update the shared provider limits') })
    : new ProviderSelector();
  const metrics = new StudioMetrics();
  const providers = new ProviderService(new ProviderRepository(database.db), authRepo, cipher, demo, selector, metrics);
  const runRepo = new RunRepository(database.db, database.readDb, database.kind);
  // Scale-out mode: run events travel through Redis streams, so any instance serves any run's stream.
  const redisEvents = config.redisUrl ? new RedisRunEvents(config, app.log) : null;
  if (redisEvents) {
    liveStreams.shareWith((ending) => redisEvents.endStreams(ending));
    redisEvents.onStreamEnding((ending) => liveStreams.endHere(ending));
    knownCredentials.shareWith((userId) => redisEvents.userChanged(userId));
    redisEvents.onUserChanged((userId) => knownCredentials.forgetHere(userId));
    projects.shareAccessChangesWith((projectId) => redisEvents.projectAccessChanged(projectId));
    redisEvents.onProjectAccessChanged((projectId) => projects.accessChangedElsewhere(projectId));
  }
  const runLog: EventLog = redisEvents?.runLog ?? new InMemoryEventLog();
  // A project's log is dropped when idle and may be made again: its ids start from the clock (event-log.ts).
  const projectLog: EventLog = redisEvents?.projectLog ?? new InMemoryEventLog({ maxEventsPerLog: 5_000, firstId: Date.now, tokensWhileFollowed: true });
  const storyboards = new StoryboardRepository(database.db, database.readDb);
  const mediaRepo = new MediaRepository(database.db);
  const media = new MediaStore(path.join(config.dataDir, 'media'), mediaRepo);
  const publisher = new RunPublisher(runLog, projectLog);
  // One queue for the whole studio: local renders of every project share MEDIA_CONCURRENCY slots fairly.
  const renderQueue = new RenderQueue(config.mediaConcurrency);
  const mediaTools = findMediaTools(config.mediaTools);
  if (!mediaTools) app.log.warn('ffmpeg/ffprobe not found: media stages cannot render (apt-get install -y ffmpeg, or set FFMPEG_PATH/FFPROBE_PATH)');
  const mediaServices = {
    media,
    renderQueue,
    mediaTools,
    previousItem: (projectId: string, stage: StageKey, key: string) => runRepo.itemByCacheKey(projectId, stage, key),
    // Accounting must not fail a shot whose media is already made: a lost usage row is logged instead.
    recordUsage: (provider: ClientProvider, usage: MediaUsage) =>
      providers.recordMediaUsage(provider, usage).catch((err: unknown) => {
        app.log.warn({ err, provider: provider.id }, 'could not record media usage');
        return 0;
      }),
    beginCall: (provider: ClientProvider) => providers.beginMediaCall(provider),
  };
  const role = opts.role ?? 'api';
  // Workers mode: API instances queue the runs they start; workers take them from the queue.
  const queue = role === 'api' && config.runsIn === 'workers' ? new RunQueue(config.redisUrl!, config.redisPrefix) : undefined;
  const llm = new LlmStreamThread();
  metrics.fromThread(() => llm.threadMetrics());
  // An API instance in workers mode starts no LLM stream itself.
  if (!queue) llm.warm();
  const runs = new RunService({ instanceId: lease.id, repo: runRepo, projects, projectRepo, storyboards, prompts, providers, llm, publisher, media: mediaServices, config, log: app.log, stages: opts.stages, remote: redisEvents ?? undefined, queue });
  const pipeline = new PipelineService(projects, projectRepo, runs, runRepo);
  const storyboardService = new StoryboardService(storyboards, projects, projectRepo, runRepo, runs.definitionOf);
  const streams = new RunStreams({ runs, repo: runRepo, projects, projectRepo, runLog, projectLog, liveStreams, heartbeatMs: config.heartbeatMs });
  runs.onFinished(({ stage, status }) => metrics.runsFinished.inc({ stage, status }));
  metrics.activeRuns(() => runs.activeCount);
  const services: Services = { database, cipher, auth, projects, providers, prompts, renderer, runs, media, metrics };
  app.decorate('services', services);

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => {
    // Client-side routes of the SPA get index.html; a missing file (a stale asset name) stays a 404.
    const pathname = req.url.split('?')[0];
    if (req.method === 'GET' && !pathname.startsWith('/api/') && !path.extname(pathname) && existsSync(path.join(config.webDist, 'index.html'))) {
      return reply.type('text/html').sendFile('index.html');
    }
    return reply.code(404).send({ error: { code: 'not_found', message: `No route ${req.method} ${req.url.split('?')[0]}` } });
  });

  await registerSecurityHeaders(app);
  // How long the studio took over an answer once it had read the request (W3C Server-Timing): a client
  // or a load test can tell the studio's share of a slow answer from the network's and its own.
  app.addHook('onSend', async (_req, reply) => void reply.header('server-timing', `app;dur=${reply.elapsedTime.toFixed(1)}`));
  await app.register(fastifyCookie);
  // Before any route: its onRequest hook must reach every one, and it denies what is not marked public.
  registerAuthGuard(app, auth);
  await app.register(fastifyRateLimit, {
    global: false,
    errorResponseBuilder: (_req, ctx) => new AppError(429, 'rate_limited', `Too many attempts; try again in ${Math.ceil(ctx.ttl / 1000)} s`),
  });
  await app.register(fastifySwagger, {
    openapi: { info: { title: 'AI Story API', version: '1.0.0' } },
    transform: jsonSchemaTransform,
  });
  await app.register(publicly(fastifySwaggerUi, { routePrefix: '/docs' }));

  app.get('/healthz', { config: { public: true }, schema: { hide: true } }, async () => ({ ok: true }));
  if (config.metricsToken) {
    metrics.collectProcessMetrics();
    await app.register(metricsRoutes(metrics, config.metricsToken));
  }

  if (role === 'api') await app.register(
    async (api) => {
      await api.register(authRoutes(auth, { loginRateLimit: config.loginRateLimit }));
      await api.register(projectRoutes(projects));
      await api.register(providerRoutes(providers, projects));
      await api.register(promptRoutes(prompts, { testRateLimit: config.templateTestRateLimit }));
      await api.register(runRoutes(runs, streams, new StageSettingsService(projects, projectRepo, runs.definitionOf)));
      await api.register(storyboardRoutes(storyboardService));
      await api.register(pipelineRoutes(pipeline));
      await api.register(mediaRoutes(media, projects));
      await api.register(exportRoutes({ projects, projectRepo, storyboards, media }));
      await api.register(imageRoutes(new ImageService({ projects, projectRepo, storyboards, runs: runRepo, providers, media, mediaRepo })));
      await api.register(narrationRoutes(new NarrationService({ projects, projectRepo, storyboards, storyboardService, providers, runs })));
    },
    { prefix: '/api/v1' },
  );

  // Two registrations: the root one only gives every route reply.sendFile (the media route: Range,
  // ETag; the SPA fallback: index.html); the web app's files are served by a public one.
  // wildcard: files are looked up per request, so a rebuilt web app is served without a restart.
  const hasWeb = role === 'api' && existsSync(config.webDist);
  await app.register(fastifyStatic, { root: hasWeb ? config.webDist : config.dataDir, serve: false });
  if (hasWeb) await app.register(publicly(fastifyStatic, { root: config.webDist, wildcard: true, index: 'index.html', decorateReply: false }));

  // Stop runs before the server closes its connections, so each saves its text as `interrupted`.
  let worker: RunWorker | undefined;
  app.addHook('preClose', async () => {
    await runs.shutdown();
    // Its jobs end with their runs (interrupted just above); it takes no new one.
    await worker?.close();
    // Run streams end with their runs; project streams have nothing to end them, and would hold the close forever.
    liveStreams.endAll();
    // Runs kill their own children on abort; this catches any left (a render outside a run, a stuck kill).
    const killed = killAllMediaProcesses();
    if (killed) app.log.warn({ killed }, 'media processes still running at shutdown were killed');
  });
  app.addHook('onClose', async () => {
    // The runs' last events (written by preClose) reach Redis before its connections close.
    await redisEvents?.close();
    await queue?.close();
    await lease.release();
    selector.close?.();
    await limitsRedis?.quit();
    await demo.close();
    await renderer.close();
    await llm.close();
    if (!opts.database) await database.close();
  });

  await redisEvents?.start();
  if (config.admin) await auth.ensureAdminFromEnv(config.admin);
  await providers.ensureDefaults(config);
  await prompts.ensureShipped();
  const interrupted = await runs.recoverOrphans();
  runs.startCheckpoints();
  // The embedded database is held by its folder lock: no one else can read a lease there, so no heartbeat.
  if (database.kind === 'postgres') {
    lease.startHeartbeat(() => {
      void runs.shutdown().finally(() => opts.onLeaseLost?.());
    });
    // Several instances: one that crashed leaves its runs to the others, once its lease has run out.
    if (redisEvents) runs.startOrphanSweep(Math.max(1_000, Math.floor(config.instanceLeaseMs / 2)));
  }
  if (interrupted) app.log.warn({ interrupted }, 'runs left running by a previous process were marked interrupted');
  if (role === 'worker') {
    worker = new RunWorker(
      { url: config.redisUrl!, prefix: config.redisPrefix, concurrency: config.workerConcurrency, lockMs: config.instanceLeaseMs, log: app.log },
      (job) => runs.executeQueued(job),
    );
  }
  return app;
}

function errorHandler(this: FastifyInstance, err: FastifyError, req: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply) {
  if (err instanceof AppError) {
    if (err.code === 'unavailable' && typeof err.details?.retry_after_s === 'number') reply.header('retry-after', String(err.details.retry_after_s));
    return reply.code(err.status).send({ error: { code: err.code, message: err.message, ...(err.details && { details: err.details }) } });
  }
  if (hasZodFastifySchemaValidationErrors(err)) {
    // A path id that is not an id, or an unknown stage in a path, is a resource that does not exist.
    if (err.validationContext === 'params') {
      return reply.code(404).send({ error: { code: 'not_found', message: 'Not found' } });
    }
    const fields: Record<string, string> = {};
    for (const v of err.validation) {
      const key = v.instancePath.replace(/^\//, '').replaceAll('/', '.') || (v.params as { issue?: { path?: unknown[] } })?.issue?.path?.join('.') || err.validationContext || 'body';
      fields[key] ??= v.message ?? 'Invalid value';
    }
    const first = Object.entries(fields)[0];
    return reply.code(400).send({
      error: { code: 'validation_error', message: first ? `${first[0]}: ${first[1]}` : 'Invalid request', details: { fields } },
    });
  }
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    // Malformed JSON, wrong content type, body too large …: the client's mistake, said plainly.
    const code = status === 401 ? 'unauthenticated' : status === 403 ? 'forbidden' : status === 404 ? 'not_found' : status === 429 ? 'rate_limited' : status === 413 ? 'payload_too_large' : 'validation_error';
    return reply.code(status).send({ error: { code, message: err.message, details: { fields: { body: err.message } } } });
  }
  req.log.error({ err }, 'unhandled error');
  return reply.code(500).send({ error: { code: 'internal_error', message: 'Something went wrong on our side; the error was logged' } });
}
