import { afterEach, describe, expect, test, vi } from 'vitest';
import { effectScope } from 'vue';
import { fakeApi, makeRun } from './fake-api.test-support';
import { useRunStream, type RunPhase } from './useRunStream';

afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

function mount() {
  const scope = effectScope();
  const finished: [RunPhase, string | null][] = [];
  const stream = scope.run(() => useRunStream({ onFinished: (phase, run) => finished.push([phase, run?.id ?? null]) }))!;
  return { stream, finished, scope };
}

const base = { run_id: 'r1', stage: 'rewrite' } as const;

describe('useRunStream', () => {
  test('tokens accumulate into the text, progress is kept, and done ends the run once with the saved text', async () => {
    const api = fakeApi();
    const { stream, finished } = mount();
    stream.attach('r1');
    expect(stream.phase.value).toBe('connecting');
    await vi.waitFor(() => expect(api.streamsOn('/runs/r1/events')).toHaveLength(1));
    const s = api.streamsOn('/runs/r1/events')[0];

    s.send({ type: 'token', content: '黑洞' });
    s.send({ type: 'token', content: '是' });
    s.send({ ...base, type: 'progress', tokens: 2, tokens_per_s: 4, elapsed_ms: 500, eta_ms: 1500 });
    await vi.waitFor(() => expect(stream.text.value).toBe('黑洞是'));
    expect(stream.phase.value).toBe('running');
    expect(stream.live.value).toBe(true);
    expect(stream.progress).toMatchObject({ tokens: 2, tokens_per_s: 4, elapsed_ms: 500, eta_ms: 1500 });

    // the server's final text wins over the deltas (it cleans the model's answer up)
    s.send({ ...base, type: 'done', full_text: '黑洞是时空的一个区域。', output: {}, run: makeRun({ status: 'completed' }) });
    await vi.waitFor(() => expect(stream.phase.value).toBe('completed'));
    expect(stream.text.value).toBe('黑洞是时空的一个区域。');
    expect(stream.live.value).toBe(false);
    expect(stream.progress.eta_ms).toBeNull();
    expect(finished).toEqual([['completed', 'r1']]);
  });

  test('a reset starts the text over; a media run keeps its tasks and items, and a done without full_text keeps what was written', async () => {
    const api = fakeApi();
    const { stream } = mount();
    stream.attach('r1');
    await vi.waitFor(() => expect(api.streams).toHaveLength(1));
    const s = api.streams[0];
    s.send({ type: 'token', content: '旧模型的开头' });
    s.send({ ...base, type: 'reset', reason: 'failover' });
    s.send({ type: 'token', content: '新' });
    await vi.waitFor(() => expect(stream.text.value).toBe('新'));
    expect(stream.resetReason.value).toBe('failover');

    const media = { run_id: 'r1', stage: 'image' } as const;
    s.send({ ...media, type: 'task', shot_id: 's1', status: 'running', percent: 40 });
    s.send({ ...media, type: 'progress', elapsed_ms: 900, done: 1, total: 3, percent: 33, step: { code: 'rendering', params: { n: 2 } } });
    s.send({ ...media, type: 'image', shot_id: 's1', image: { shot_id: 's1', media_id: 'm1', url: '/media/m1', width: 360 } });
    s.send({ ...media, type: 'task', shot_id: 's1', status: 'succeeded' });
    s.send({ ...media, type: 'done', output: { images: [] }, run: makeRun({ stage: 'image', status: 'completed' }) });
    await vi.waitFor(() => expect(stream.phase.value).toBe('completed'));
    expect(stream.tasks.value.s1).toEqual({ status: 'succeeded', percent: null, message: null, position: null });
    expect(stream.items.value.s1).toMatchObject({ media_id: 'm1', url: '/media/m1', width: 360 });
    expect(stream.progress).toMatchObject({ done: 1, total: 3, percent: 33, step: { code: 'rendering', params: { n: 2 } } });
    // the tokens counted before are not wiped by a progress event that does not count tokens
    expect(stream.text.value).toBe('新');
  });

  test('an error event fails the run with the server code and whether a retry can help', async () => {
    const api = fakeApi();
    const { stream, finished } = mount();
    stream.attach('r1');
    await vi.waitFor(() => expect(api.streams).toHaveLength(1));
    api.streams[0].send({ ...base, type: 'error', message: 'upstream said no', code: 'upstream_error', retryable: true });
    await vi.waitFor(() => expect(stream.phase.value).toBe('failed'));
    expect(stream.error.value).toEqual({ message: 'upstream said no', code: 'upstream_error', retryable: true });
    expect(finished).toEqual([['failed', null]]);
  });

  test('a stream that ends without a terminal event is resumed after the last event id, and a stop arrives as a stage update', async () => {
    const api = fakeApi();
    const { stream, finished } = mount();
    stream.attach('r1');
    await vi.waitFor(() => expect(api.streams).toHaveLength(1));
    api.streams[0].send({ type: 'token', content: '一' });
    await vi.waitFor(() => expect(stream.text.value).toBe('一'));
    api.streams[0].send({ type: 'token', content: '二' });
    await vi.waitFor(() => expect(stream.text.value).toBe('一二'));
    api.streams[0].end();
    // the backoff of the real client is about a second
    await vi.waitFor(() => expect(api.streams).toHaveLength(2), { timeout: 5_000 });
    expect(api.calls.filter((c) => c.includes('/events'))).toEqual(['GET /api/v1/runs/r1/events', 'GET /api/v1/runs/r1/events?last_event_id=2']);
    api.streams[1].send({ ...base, type: 'stage_update', status: 'cancelled' });
    await vi.waitFor(() => expect(stream.phase.value).toBe('cancelled'));
    expect(stream.text.value).toBe('一二');
    expect(finished).toEqual([['cancelled', null]]);
  });

  test('closing the scope closes the connection; clear() forgets the run', async () => {
    const api = fakeApi();
    const { stream, scope } = mount();
    stream.attach('r1');
    await vi.waitFor(() => expect(api.streams).toHaveLength(1));
    api.streams[0].send({ type: 'token', content: '进行中' });
    await vi.waitFor(() => expect(stream.text.value).toBe('进行中'));
    scope.stop();
    await vi.waitFor(() => expect(api.streams[0].closedByClient).toBe(true));
    stream.clear();
    expect(stream.runId.value).toBeNull();
    expect(stream.phase.value).toBe('idle');
    expect(stream.text.value).toBe('');
  });
});
