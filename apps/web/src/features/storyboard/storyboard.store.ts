import { RewriteOutput, type ProjectDetail } from '@ai-story/contracts';
import { defineStore } from 'pinia';
import { reactive } from 'vue';

export interface StoryboardForm {
  text: string;
  /** null: let the model choose how many shots the text needs. */
  shot_count: number | null;
  visual_style: string;
  /** '' = let the studio choose (routing, failover). */
  provider_id: string;
  /** The user typed their own text: a newer rewrite does not replace it. */
  text_edited: boolean;
}

/**
 * The storyboard form per project (the frame shape and shot lengths are the project's own media
 * settings, saved on the project), kept while the app is open (leaving the tab loses nothing).
 */
export const useStoryboardStore = defineStore('storyboard', () => {
  const forms = reactive<Record<string, StoryboardForm>>({});

  function formFor(projectId: string, init: () => StoryboardForm): StoryboardForm {
    forms[projectId] ??= init();
    return forms[projectId];
  }

  return { forms, formFor };
});

/** What the storyboard cuts by default: the project's current rewrite, else its topic. */
export function storyboardSource(project: ProjectDetail): string {
  const parsed = RewriteOutput.safeParse(project.stages.find((s) => s.stage_type === 'rewrite')?.output);
  return (parsed.success && parsed.data.rewritten_text.trim()) || project.original_topic;
}
