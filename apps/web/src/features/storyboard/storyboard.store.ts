import { defineStore } from 'pinia';
import { reactive } from 'vue';

export interface StoryboardForm {
  text: string;
  /** null: let the model choose how many shots the text needs. */
  shot_count: number | null;
  min_duration: number;
  max_duration: number;
  aspect_ratio: string;
  visual_style: string;
  /** '' = let the studio choose (routing, failover). */
  provider_id: string;
  /** The user typed their own text: a newer rewrite does not replace it. */
  text_edited: boolean;
}

/** The storyboard form per project, kept while the app is open (leaving the tab loses nothing). */
export const useStoryboardStore = defineStore('storyboard', () => {
  const forms = reactive<Record<string, StoryboardForm>>({});

  function formFor(projectId: string, init: () => StoryboardForm): StoryboardForm {
    forms[projectId] ??= init();
    return forms[projectId];
  }

  return { forms, formFor };
});
