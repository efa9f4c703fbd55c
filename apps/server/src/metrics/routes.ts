import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { requireAdmin } from '../auth/guard.ts';
import type { StudioMetrics } from './metrics.ts';

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * GET /metrics in Prometheus's text format, registered only when METRICS_TOKEN is set. Operational
 * data (loads, error rates, timings) is for the operator: the scraper's own token, or an admin.
 */
export function metricsRoutes(metrics: StudioMetrics, token: string): FastifyPluginAsync {
  const expected = digest(token);
  // Digests of equal length, so the comparison takes the same time whatever the guess.
  const isToken = (bearer: string) => timingSafeEqual(digest(bearer), expected);
  return async (app) => {
    app.get('/metrics', { config: { machineToken: isToken }, schema: { hide: true } }, async (req, reply) => {
      if (req.authVia !== 'machine') requireAdmin(req);
      reply.header('cache-control', 'no-store').type(metrics.registry.contentType);
      return metrics.scrape();
    });
  };
}
