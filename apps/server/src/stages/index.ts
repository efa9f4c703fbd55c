import type { StageKey } from '@ai-story/contracts';
import type { StageDefinition } from './definition.ts';
import { rewriteStage } from './rewrite.ts';

/** The stages the run engine can execute. Image, video and export are media stages still to come. */
export const STAGES: Partial<Record<StageKey, StageDefinition>> = {
  rewrite: rewriteStage,
};
