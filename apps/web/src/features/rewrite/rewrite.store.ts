import { RewriteStyle } from '@ai-story/contracts';
import { defineStore } from 'pinia';
import { reactive } from 'vue';

export interface RewriteForm {
  original_text: string;
  style: RewriteStyle;
  instructions: string;
  /** '' = let the studio choose (routing, failover). */
  provider_id: string;
}

/**
 * The rewrite form per project, kept while the app is open: leaving the tab or the project and
 * coming back does not lose what the user typed.
 */
export const useRewriteStore = defineStore('rewrite', () => {
  const forms = reactive<Record<string, RewriteForm>>({});

  function formFor(projectId: string, init: () => RewriteForm): RewriteForm {
    forms[projectId] ??= init();
    return forms[projectId];
  }

  return { forms, formFor };
});

export const isRewriteStyle = (s: unknown): s is RewriteStyle => RewriteStyle.safeParse(s).success;
