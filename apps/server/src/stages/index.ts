import { STAGE_KEYS, type StageKey } from '@ai-story/contracts';
import { cameraStage } from './camera.ts';
import { exportStage } from './export.ts';
import type { LlmStageDefinition, StageDefinition } from './definition.ts';
import { imageStage } from './image.ts';
import { narrationStage } from './narration.ts';
import { rewriteStage } from './rewrite.ts';
import { storyboardStage } from './storyboard.ts';
import { videoStage } from './video.ts';

/** The stages that have a prompt template (the Prompts page edits these). */
export const TEMPLATED_STAGES: Partial<Record<StageKey, LlmStageDefinition>> = {
  rewrite: rewriteStage,
  storyboard: storyboardStage,
  camera: cameraStage,
};

/** The stages the run engine can execute; a stage missing here is skipped by the pipeline as not available yet. */
export const STAGES: Partial<Record<StageKey, StageDefinition>> = {
  ...TEMPLATED_STAGES,
  export: exportStage,
  image: imageStage,
  narration: narrationStage,
  video: videoStage,
};

/**
 * Whether a run of `stage` works from the storyboard's shots: the stages after the storyboard do. The
 * rewrite and the storyboard itself read none, so their starts do not read them.
 */
export const readsShots = (stage: StageKey) => STAGE_KEYS.indexOf(stage) > STAGE_KEYS.indexOf('storyboard');
