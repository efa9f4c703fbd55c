import type { RunUsage } from '@ai-story/contracts';

/** How an execution ended; the run service saves it (one transaction per ending). */
export type Outcome =
  | { status: 'completed'; output: unknown; usage: RunUsage; /** Its usage row, still being saved (the ending waits for it). */ usageSaved?: Promise<void> }
  | { status: 'failed'; error: Error; code?: string }
  | { status: 'stopped' };

export const noUsage = (durationMs: number): RunUsage => ({ prompt_tokens: 0, completion_tokens: 0, estimated: false, ttft_ms: null, duration_ms: durationMs, cost: 0 });
