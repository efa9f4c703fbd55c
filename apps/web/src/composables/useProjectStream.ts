import { ProjectEvent } from '@ai-story/contracts';
import { onScopeDispose, ref, watch, type Ref } from 'vue';
import { openEventStream, type StreamHandle, type StreamState } from '@/api/run-stream';

/**
 * One connection per open project (DESIGN §5: a tab needs one connection, not six): stage statuses,
 * project status and run lifecycle events for every stage. Reconnects for as long as the page is open.
 * It asks for no `token` or `progress` events (`?tokens=0`): the open stage's run stream carries
 * those, and a page should receive each token once.
 */
export function useProjectStream(projectId: Ref<string | null | undefined>, onEvent: (event: ProjectEvent) => void) {
  const state = ref<StreamState | 'idle' | 'unavailable'>('idle');
  let handle: StreamHandle | null = null;
  let active: object | null = null;

  function stop() {
    active = null;
    handle?.close();
    handle = null;
  }

  function start(id: string) {
    stop();
    const token = {};
    active = token;
    const h = openEventStream({
      path: `/projects/${id}/events`,
      query: { tokens: '0' },
      schema: ProjectEvent,
      onEvent: (event) => onEvent(event),
      isTerminal: (event) => event.type === 'access_revoked',
      onState: (s) => {
        if (active === token) state.value = s;
      },
      maxAttempts: Number.POSITIVE_INFINITY,
    });
    handle = h;
    void h.done.then((end) => {
      if (active === token && end.reason === 'failed') state.value = 'unavailable';
    });
  }

  watch(
    projectId,
    (id) => {
      if (id) start(id);
      else stop();
    },
    { immediate: true },
  );
  onScopeDispose(stop);

  return { state, stop };
}
