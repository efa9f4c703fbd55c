import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';

/** Latencies of a streamed answer, in seconds: a first token within 50 ms to a minute; gaps of 1 ms to 10 s. */
const TTFT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60];
const GAP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

/** A worker thread's own metrics, as prom-client's `getMetricsAsJSON` gives them. */
export type ThreadMetrics = MetricObjectWithValues<MetricValue<string>>[];

/**
 * The gap between two deltas of one answer, observed on the upstream reader's thread where each delta
 * is read (llm-stream-worker.ts): the studio's thread gets them in batches of up to 2 ms, so there a
 * fast provider's gaps were the batching's, and one observe per delta was the studio's cost.
 */
export const tokenGapHistogram = (registry: Registry) =>
  new Histogram({ name: 'ai_story_llm_token_gap_seconds', help: 'Time between two streamed deltas of one LLM answer, as read from the provider', buckets: GAP_BUCKETS, registers: [registry] });

/**
 * The studio's Prometheus metrics (GET /metrics). One registry per studio, not prom-client's global
 * one: tests build several studios in one process, and each must count only its own. Counters are
 * per instance; in scale-out mode Prometheus scrapes every instance and sums.
 */
export class StudioMetrics {
  readonly registry = new Registry();

  readonly runsFinished = new Counter({
    name: 'ai_story_runs_finished_total',
    help: 'Runs that ended, by stage and final status',
    labelNames: ['stage', 'status'] as const,
    registers: [this.registry],
  });
  readonly sseStreams = new Gauge({ name: 'ai_story_sse_streams_active', help: 'Event streams (SSE subscribers) open now', registers: [this.registry] });
  readonly sseEvents = new Counter({ name: 'ai_story_sse_events_sent_total', help: 'Events written to event streams, every subscriber counted', registers: [this.registry] });
  readonly ttft = new Histogram({
    name: 'ai_story_llm_time_to_first_token_seconds',
    help: 'From the start of the LLM request that answered to its first token',
    buckets: TTFT_BUCKETS,
    registers: [this.registry],
  });
  readonly providerErrors = new Counter({
    name: 'ai_story_provider_errors_total',
    help: 'Failed provider calls, by provider type and error code',
    labelNames: ['provider_type', 'code'] as const,
    registers: [this.registry],
  });

  private readonly threads: (() => Promise<ThreadMetrics>)[] = [];

  /** Metrics a worker thread keeps itself, asked for at each scrape. */
  fromThread(metrics: () => Promise<ThreadMetrics>) {
    this.threads.push(metrics);
  }

  /** Everything, in Prometheus's text format: this registry's metrics and the threads' (summed, as prom-client sums a cluster's). */
  async scrape(): Promise<string> {
    const fromThreads = (await Promise.all(this.threads.map((metrics) => metrics()))).filter((m) => m.length);
    if (!fromThreads.length) return this.registry.metrics();
    return Registry.merge([this.registry, AggregatorRegistry.aggregate(fromThreads)]).metrics();
  }

  /** Runs in progress now, read when scraped. */
  activeRuns(count: () => number) {
    new Gauge({ name: 'ai_story_runs_active', help: 'Runs in progress on this instance', registers: [this.registry], collect() { this.set(count()); } });
  }

  /** The process's own metrics (CPU, memory, event-loop lag, GC): only when metrics are served, as they sample on a timer. */
  collectProcessMetrics() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** Outcomes that are not provider faults: a stop the user or the server asked for. */
  providerFailed(providerType: string, outcome: string) {
    if (outcome === 'ok' || outcome === 'cancelled' || outcome === 'interrupted') return;
    this.providerErrors.inc({ provider_type: providerType, code: outcome });
  }
}
