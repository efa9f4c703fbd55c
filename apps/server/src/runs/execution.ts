import type { RunUsage } from '@ai-story/contracts';

/** How an execution ended; the run service saves it (one transaction per ending). */
export type Outcome =
  | { status: 'completed'; output: unknown; usage: RunUsage }
  | { status: 'failed'; error: Error; code?: string }
  | { status: 'stopped' };

export const noUsage = (durationMs: number): RunUsage => ({ prompt_tokens: 0, completion_tokens: 0, estimated: false, ttft_ms: null, duration_ms: durationMs, cost: 0 });
