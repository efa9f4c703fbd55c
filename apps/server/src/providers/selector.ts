import type { Strategy } from '@ai-story/contracts';

/** What the selector needs to know of a provider. */
export interface Candidate {
  id: string;
  isActive: boolean;
  priority: number;
  weight: number;
  rateLimitRpm: number | null;
  rateLimitRpd: number | null;
}

export interface SelectorOptions {
  /** Failures in a row that put a provider on cool-down. */
  failureThreshold?: number;
  cooldownMs?: number;
  now?: () => number;
  random?: () => number;
}

export interface Selection<T> {
  /** Providers to try in order: the strategy's choice first, then the rest as fail-over. */
  order: T[];
  /** Why a provider was left out (inactive, over its rate limit). */
  skipped: { id: string; reason: string; retryAfterMs?: number }[];
  /** Providers put last because they failed repeatedly: still tried, never refused (a cool-down is a hint, not a lock). */
  cooling: { id: string; reason: string }[];
}

const MINUTE = 60_000;
const DAY = 24 * 3600_000;

/**
 * Chooses providers for a call. Per-process state (in-flight counts, request windows, failures);
 * in scale-out mode the same interface is backed by Redis so limits hold across instances.
 */
export class ProviderSelector {
  private readonly inflight = new Map<string, number>();
  private readonly requests = new Map<string, number[]>();
  private readonly failures = new Map<string, { count: number; until: number }>();
  private readonly cursors = new Map<string, number>();
  private readonly failureThreshold: number;
  private readonly cooldownMs: number;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(opts: SelectorOptions = {}) {
    this.failureThreshold = opts.failureThreshold ?? 3;
    this.cooldownMs = opts.cooldownMs ?? 60_000;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
  }

  select<T extends Candidate>(candidates: T[], strategy: Strategy, key = 'default'): Selection<T> {
    const skipped: Selection<T>['skipped'] = [];
    const cooling: Selection<T>['cooling'] = [];
    const usable: T[] = [];
    const cooled: { c: T; until: number }[] = [];
    const now = this.now();
    for (const c of candidates) {
      const limit = this.unusableReason(c);
      if (limit) {
        skipped.push({ id: c.id, ...limit });
        continue;
      }
      const until = this.coolingUntil(c.id, now);
      if (until === null) {
        usable.push(c);
      } else {
        cooled.push({ c, until });
        cooling.push({ id: c.id, reason: `cooling down for ${Math.ceil((until - now) / 1000)} s after repeated failures` });
      }
    }
    // Three faults in a row (a cut stream, a 429, a 500) say little about the next call: a provider
    // that is cooling down goes after the healthy ones, soonest-recovered first, but is still tried.
    const fallback = cooled.sort((a, b) => a.until - b.until).map((x) => x.c);
    if (usable.length === 0) return { order: fallback, skipped, cooling };
    const first = this.pick(usable, strategy, key);
    return { order: [first, ...usable.filter((c) => c !== first), ...fallback], skipped, cooling };
  }

  private coolingUntil(id: string, now: number): number | null {
    const failure = this.failures.get(id);
    return failure && failure.until > now ? failure.until : null;
  }

  private pick<T extends Candidate>(usable: T[], strategy: Strategy, key: string): T {
    switch (strategy) {
      case 'round_robin': {
        const i = this.cursors.get(key) ?? 0;
        this.cursors.set(key, i + 1);
        return usable[i % usable.length];
      }
      case 'random':
        return usable[Math.floor(this.random() * usable.length)];
      case 'weighted': {
        const weights = usable.map((c) => Math.max(0, c.weight));
        const total = weights.reduce((a, b) => a + b, 0);
        if (total === 0) return usable[0];
        let r = this.random() * total;
        for (let i = 0; i < usable.length; i++) {
          r -= weights[i];
          if (r < 0) return usable[i];
        }
        return usable[usable.length - 1];
      }
      case 'least_loaded':
        // Ties go to list order, so an idle system behaves like a priority list.
        return usable.reduce((best, c) => ((this.inflight.get(c.id) ?? 0) < (this.inflight.get(best.id) ?? 0) ? c : best));
      default: {
        const never: never = strategy;
        throw new Error(`Unknown strategy ${never}`);
      }
    }
  }

  /** Why a provider must not be called now (switched off, or over a limit its admin set), and when it may be again. */
  unusableReason(c: Candidate): { reason: string; retryAfterMs?: number } | null {
    if (!c.isActive) return { reason: 'inactive' };
    const now = this.now();
    const times = this.window(c.id, now);
    const lastMinute = times.filter((t) => t > now - MINUTE);
    if (c.rateLimitRpm && lastMinute.length >= c.rateLimitRpm) {
      return { reason: `over its limit of ${c.rateLimitRpm} requests per minute`, retryAfterMs: lastMinute[lastMinute.length - c.rateLimitRpm] + MINUTE - now };
    }
    if (c.rateLimitRpd && times.length >= c.rateLimitRpd) {
      return { reason: `over its limit of ${c.rateLimitRpd} requests per day`, retryAfterMs: times[times.length - c.rateLimitRpd] + DAY - now };
    }
    return null;
  }

  /** Call when a request to the provider starts; the returned function ends it. */
  begin(id: string): (outcome: 'ok' | 'failed') => void {
    const now = this.now();
    this.window(id, now).push(now);
    this.inflight.set(id, (this.inflight.get(id) ?? 0) + 1);
    let ended = false;
    return (outcome) => {
      if (ended) return;
      ended = true;
      this.inflight.set(id, Math.max(0, (this.inflight.get(id) ?? 1) - 1));
      if (outcome === 'ok') {
        this.failures.delete(id);
        return;
      }
      const f = this.failures.get(id) ?? { count: 0, until: 0 };
      f.count += 1;
      if (f.count >= this.failureThreshold) {
        f.until = this.now() + this.cooldownMs;
        f.count = 0;
      }
      this.failures.set(id, f);
    };
  }

  inFlight = (id: string) => this.inflight.get(id) ?? 0;

  private window(id: string, now: number): number[] {
    let times = this.requests.get(id);
    if (!times) this.requests.set(id, (times = []));
    while (times.length && times[0] <= now - DAY) times.shift();
    return times;
  }
}
