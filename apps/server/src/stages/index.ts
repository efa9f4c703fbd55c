import type { StageKey } from '@ai-story/contracts';
import { cameraStage } from './camera.ts';
import type { StageDefinition } from './definition.ts';
import { rewriteStage } from './rewrite.ts';
import { storyboardStage } from './storyboard.ts';

/** The stages the run engine can execute. Image, video and export are media stages still to come. */
export const STAGES: Partial<Record<StageKey, StageDefinition>> = {
  rewrite: rewriteStage,
  storyboard: storyboardStage,
  camera: cameraStage,
};
