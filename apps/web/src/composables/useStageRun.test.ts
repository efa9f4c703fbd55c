import type { ProjectStage, Run } from '@ai-story/contracts';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { effectScope, nextTick, reactive } from 'vue';
import { isApiError } from '@/api/client';
import { runsApi } from '@/features/runs/api';
import { fakeApi, makeRun } from './fake-api.test-support';
import type { RunPhase } from './useRunStream';
import { useStageRun } from './useStageRun';

afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

function stageOf(over: Partial<ProjectStage> = {}): ProjectStage {
  return reactive({
    id: 'st1',
    stage_type: 'rewrite',
    status: 'pending',
    stale: false,
    stale_shot_ids: [],
    status_reason: null,
    output: null,
    current_run_id: null,
    updated_at: '2026-01-01T00:00:00Z',
    ...over,
  });
}

function mount(stage: ProjectStage, hasOutput = false) {
  const finished: RunPhase[] = [];
  const adopted: Run[] = [];
  const scope = effectScope();
  const run = scope.run(() =>
    useStageRun({ stage: () => stage, hasOutput: () => hasOutput, adoptRun: (r) => adopted.push(r), onFinished: (phase) => void finished.push(phase) }),
  )!;
  return { run, finished, adopted, scope };
}

const startPath = '/projects/p1/stages/rewrite/runs/';
const start = () => runsApi.start('p1', 'rewrite', { input: { original_text: '黑洞' } });

describe('useStageRun', () => {
  test('a run that is already going is followed once, though the tab and the project stream both name it', async () => {
    const api = fakeApi();
    api.on('GET', '/runs/r1/', { body: makeRun({ input: { style: 'science' } }) });
    const stage = stageOf({ status: 'running', current_run_id: 'r1' });
    const { run, adopted } = mount(stage);
    // The project stream's first update names the same run while the tab's own look-up is on the way.
    stage.status = 'queued' as ProjectStage['status'];
    await nextTick();
    stage.status = 'running';
    await vi.waitFor(() => expect(run.stream.runId.value).toBe('r1'));
    await vi.waitFor(() => expect(api.streamsOn('/runs/r1/events')).toHaveLength(1));
    await new Promise((r) => setTimeout(r, 50));
    expect(api.streamsOn('/runs/r1/events')).toHaveLength(1);
    expect(api.streamsOn('/runs/r1/events')[0].closedByClient).toBe(false);
    expect(adopted.map((r) => r.input)).toEqual([{ style: 'science' }]);
    expect(run.modelOfRun.value?.model).toBe('demo-model');
    expect(run.busy.value).toBe(true);
  });

  test('a run started elsewhere later (the pipeline, a teammate) is followed too, and its end is reported', async () => {
    const api = fakeApi();
    api.on('GET', '/runs/r2/', { body: makeRun({ id: 'r2' }) });
    const stage = stageOf();
    const { run, finished } = mount(stage, true);
    expect(run.phase.value).toBe('completed'); // nothing followed: the saved output decides
    stage.status = 'running';
    stage.current_run_id = 'r2';
    await vi.waitFor(() => expect(api.streamsOn('/runs/r2/events')).toHaveLength(1));
    const historyBefore = run.historyKey.value;
    api.streamsOn('/runs/r2/events')[0].send({ run_id: 'r2', stage: 'rewrite', type: 'error', message: 'quota', code: 'rate_limited', retryable: true });
    await vi.waitFor(() => expect(run.phase.value).toBe('failed'));
    expect(run.runError.value?.code).toBe('rate_limited');
    expect(finished).toEqual(['failed']);
    expect(run.historyKey.value).toBeGreaterThan(historyBefore);
  });

  test('starting while a run is going joins that run (409 conflict) instead of failing', async () => {
    const api = fakeApi();
    api.on('POST', startPath, { status: 409, body: { error: { code: 'conflict', message: 'busy', details: { active_run_id: 'r3' } } } });
    api.on('GET', '/runs/r3/', { body: makeRun({ id: 'r3', model: 'other-model' }) });
    const { run } = mount(stageOf());
    await expect(run.start(start)).resolves.toBe(false);
    expect(run.joinedRunId.value).toBe('r3');
    expect(run.startError.value).toBeNull();
    expect(run.stream.runId.value).toBe('r3');
    expect(run.modelOfRun.value?.model).toBe('other-model');
    await vi.waitFor(() => expect(api.streamsOn('/runs/r3/events')).toHaveLength(1));
  });

  test('a refused start puts the field messages beside their fields and keeps the error to show', async () => {
    const api = fakeApi();
    api.on('POST', startPath, {
      status: 400,
      body: { error: { code: 'validation_error', message: 'Invalid input', details: { fields: { 'body.input.original_text': 'Required', 'input.style': 'Unknown style' } } } },
    });
    const { run } = mount(stageOf());
    await expect(run.start(start)).resolves.toBe(false);
    expect(run.fieldErrors.value).toEqual({ original_text: 'Required', style: 'Unknown style' });
    expect(isApiError(run.startError.value) && run.startError.value.code).toBe('validation_error');
    expect(run.busy.value).toBe(false);
    expect(api.streams).toHaveLength(0);
  });

  test('start follows the new run, stop cancels it, and the stop ends the run as cancelled', async () => {
    const api = fakeApi();
    api.on('POST', startPath, { status: 202, body: makeRun({ id: 'r4', status: 'queued' }) });
    let cancelled = 0;
    api.on('POST', '/runs/r4/cancel/', () => {
      cancelled++;
      return { body: makeRun({ id: 'r4', status: 'cancelled' }) };
    });
    const { run, finished } = mount(stageOf());
    await expect(run.start(start)).resolves.toBe(true);
    await vi.waitFor(() => expect(api.streamsOn('/runs/r4/events')).toHaveLength(1));
    const s = api.streamsOn('/runs/r4/events')[0];
    s.send({ type: 'token', content: '开头' });
    await run.stop();
    expect(cancelled).toBe(1);
    expect(run.stopping.value).toBe(true);
    s.send({ run_id: 'r4', stage: 'rewrite', type: 'stage_update', status: 'cancelled' });
    await vi.waitFor(() => expect(run.phase.value).toBe('cancelled'));
    expect(run.stopping.value).toBe(false);
    expect(run.stream.text.value).toBe('开头');
    expect(finished).toEqual(['cancelled']);

    // After a restore the saved output is the truth again.
    run.forget();
    expect(run.stream.runId.value).toBeNull();
    expect(run.phase.value).toBe('idle');
  });

  test('the last run of the stage, ended, says how it ended without opening a stream', async () => {
    const api = fakeApi();
    api.on('GET', '/runs/r5/', { body: makeRun({ id: 'r5', status: 'failed', error: { message: 'timeout', code: 'upstream_timeout', retryable: true } }) });
    const { run } = mount(stageOf({ status: 'failed', current_run_id: 'r5' }));
    await vi.waitFor(() => expect(run.lastRun.value?.id).toBe('r5'));
    expect(run.phase.value).toBe('failed');
    expect(run.runError.value?.message).toBe('timeout');
    expect(api.streams).toHaveLength(0);
  });
});
