import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Latencies of a streamed answer, in seconds: a first token within 50 ms to a minute; gaps of 1 ms to 10 s. */
const TTFT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60];
const GAP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

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
  readonly tokenGap = new Histogram({
    name: 'ai_story_llm_token_gap_seconds',
    help: 'Time between two streamed deltas of one LLM answer',
    buckets: GAP_BUCKETS,
    registers: [this.registry],
  });
  readonly providerErrors = new Counter({
    name: 'ai_story_provider_errors_total',
    help: 'Failed provider calls, by provider type and error code',
    labelNames: ['provider_type', 'code'] as const,
    registers: [this.registry],
  });

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
