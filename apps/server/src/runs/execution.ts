import type { RunUsage } from '@ai-story/contracts';
import type { Db } from '../db/client.ts';

/** How an execution ended; the run service saves it (one transaction per ending). */
export type Outcome =
  | { status: 'completed'; output: unknown; usage: RunUsage; /** Writes its call's usage row, in the ending's transaction. */ saveUsage?: (db: Db) => Promise<unknown> }
  | { status: 'failed'; error: Error; code?: string }
  | { status: 'stopped' };

export const noUsage = (durationMs: number): RunUsage => ({ prompt_tokens: 0, completion_tokens: 0, estimated: false, ttft_ms: null, duration_ms: durationMs, cost: 0 });
