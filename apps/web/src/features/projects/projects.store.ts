import type { CreateProjectInput, Project, ProjectDetail, ProjectEvent, ProjectStage, UpdateProjectInput } from '@ai-story/contracts';
import { STAGE_KEYS } from '@ai-story/contracts';
import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import { projectsApi } from './api';

export const PAGE_SIZE = 12;

export const useProjectsStore = defineStore('projects', () => {
  // ---- the list ----
  const items = ref<Project[]>([]);
  const count = ref(0);
  const page = ref(1);
  const search = ref('');
  const listLoading = ref(false);
  const listError = ref<unknown>(null);
  const listLoaded = ref(false);
  let listAbort: AbortController | null = null;

  async function fetchList() {
    listAbort?.abort(); // a newer search wins over a slower older one
    const abort = (listAbort = new AbortController());
    listLoading.value = true;
    listError.value = null;
    try {
      const res = await projectsApi.list({ page: page.value, page_size: PAGE_SIZE, search: search.value.trim() || undefined }, abort.signal);
      // deleting the last item of the last page: step back a page
      if (res.results.length === 0 && res.count > 0 && page.value > 1) {
        page.value = Math.max(1, Math.ceil(res.count / PAGE_SIZE));
        return fetchList();
      }
      items.value = res.results;
      count.value = res.count;
      listLoaded.value = true;
    } catch (err) {
      if ((err as Error).name !== 'AbortError') listError.value = err;
    } finally {
      if (listAbort === abort) listLoading.value = false;
    }
  }

  async function create(body: CreateProjectInput) {
    const project = await projectsApi.create(body);
    void fetchList();
    return project;
  }

  async function update(id: string, body: UpdateProjectInput) {
    const project = await projectsApi.update(id, body);
    const i = items.value.findIndex((p) => p.id === id);
    if (i >= 0) {
      items.value[i] = { ...items.value[i], ...stripStages(project) };
      void fetchList(); // a renamed project may no longer match the search
    }
    if (current.value?.id === id) current.value = project;
    return project;
  }

  async function remove(id: string) {
    await projectsApi.remove(id);
    items.value = items.value.filter((p) => p.id !== id);
    count.value = Math.max(0, count.value - 1);
    void fetchList();
  }

  // ---- the open project ----
  const current = ref<ProjectDetail | null>(null);
  const currentLoading = ref(false);
  const currentError = ref<unknown>(null);

  async function open(id: string) {
    if (current.value?.id !== id) current.value = null;
    currentLoading.value = true;
    currentError.value = null;
    try {
      current.value = await projectsApi.get(id);
    } catch (err) {
      currentError.value = err;
    } finally {
      currentLoading.value = false;
    }
  }

  async function reloadCurrent() {
    if (!current.value) return;
    try {
      current.value = await projectsApi.get(current.value.id);
    } catch {
      // keep what we have; the next event or reload tries again
    }
  }

  /** Stages in pipeline order, whatever order the server sent them in. */
  const stages = computed<ProjectStage[]>(() => {
    const list = current.value?.stages ?? [];
    return STAGE_KEYS.map((key) => list.find((s) => s.stage_type === key)).filter((s): s is ProjectStage => !!s);
  });

  /** Live updates from the project stream: statuses in the header change without a reload. */
  function applyEvent(event: ProjectEvent) {
    const project = current.value;
    if (!project) return;
    switch (event.type) {
      case 'project_update': {
        if (event.project_id !== project.id) return;
        const status = event.status as Project['status'];
        project.status = status;
        if (event.pipeline_state) project.pipeline_state = event.pipeline_state;
        for (const s of event.stages) {
          const stage = project.stages.find((x) => x.stage_type === s.stage_type);
          if (!stage) continue;
          Object.assign(stage, { status: s.status, stale: s.stale, stale_shot_ids: s.stale_shot_ids, current_run_id: s.current_run_id });
          if (s.status_reason !== undefined) stage.status_reason = s.status_reason;
          if (s.status_reason_code !== undefined) Object.assign(stage, { status_reason_code: s.status_reason_code, status_reason_params: s.status_reason_params ?? {} });
        }
        // As the server counts: only a current result is done (skipped and out-of-date stages are not).
        const done = project.stages.filter((s) => s.status === 'completed' && s.output != null && !s.stale && !s.stale_shot_ids.length).length;
        project.stale_stages = project.stages.filter((s) => s.stale || s.stale_shot_ids.length > 0).map((s) => s.stage_type);
        if (project.stages.length) project.progress = done / project.stages.length;
        break;
      }
      case 'stage_update': {
        const stage = project.stages.find((x) => x.stage_type === event.stage);
        if (!stage) return;
        if (event.status === 'queued') stage.status = 'running';
        else stage.status = event.status;
        if (event.status === 'running' || event.status === 'queued') stage.current_run_id = event.run_id;
        break;
      }
      case 'done': {
        const stage = project.stages.find((x) => x.stage_type === event.stage);
        if (stage) {
          stage.status = 'completed';
          stage.stale = false;
          stage.output = event.output ?? event.run.output ?? stage.output;
          stage.current_run_id = event.run.id;
        }
        break;
      }
      case 'error': {
        const stage = project.stages.find((x) => x.stage_type === event.stage);
        if (stage) stage.status = 'failed';
        break;
      }
      case 'token':
      case 'progress':
      case 'info':
      case 'shot':
      case 'movement':
      case 'task':
      case 'image':
      case 'audio':
      case 'clip':
      case 'reset':
      case 'access_revoked':
        // the stage tab's own run stream shows these; the page handles a revoked access
        break;
      default: {
        const unhandled: never = event;
        console.warn('[project] unhandled event', unhandled);
      }
    }
  }

  return {
    items, count, page, search, listLoading, listError, listLoaded, fetchList, create, update, remove,
    current, currentLoading, currentError, stages, open, reloadCurrent, applyEvent,
  };
});

function stripStages(p: ProjectDetail): Project {
  const { stages: _stages, ...rest } = p;
  return rest;
}
