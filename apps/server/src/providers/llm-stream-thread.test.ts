import { expectedText, startFakeLlm, type FakeLlmServer } from '@ai-story/fake-llm';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LlmError, type LlmDelta } from './llm-client.ts';
import { LlmStreamThread } from './llm-stream-thread.ts';

// streamChat's own contract on the thread is tested with llm-client.test.ts; these are the thread's own cases.
let fake: FakeLlmServer;
beforeAll(async () => {
  fake = await startFakeLlm();
});
afterAll(() => fake.close());

const request = (prompt: string, model = 'fake-model?tokens=300&tps=100&ttft=0') => ({
  provider: { api_url: fake.url, api_key: 'sk-none', model_name: model, timeout_s: 5 },
  messages: [{ role: 'user' as const, content: prompt }],
});

test('streams of many runs at once each get exactly their own text', async () => {
  const thread = new LlmStreamThread();
  try {
    const prompts = Array.from({ length: 30 }, (_, i) => `第${i}个故事`);
    const texts = await Promise.all(
      prompts.map(async (prompt) => {
        let text = '';
        const result = await thread.streamChat(request(prompt, 'fake-model?tokens=40&tps=400&ttft=0'), (d) => (text += d.text));
        expect(result.text).toBe(text);
        return text;
      }),
    );
    expect(texts).toEqual(prompts.map((prompt) => expectedText({ model: 'fake-model?tokens=40', messages: [{ role: 'user', content: prompt }] })));
    expect(thread.activeCount).toBe(0);
  } finally {
    await thread.close();
  }
});

test('the gap between two deltas is measured per stream on the thread, and scraped from there', async () => {
  const thread = new LlmStreamThread();
  try {
    expect(await thread.threadMetrics()).toEqual([]); // not started: nothing to say yet
    const deltas = await Promise.all(
      ['灯塔', '鲸鱼', '暴风雨'].map(async (prompt, i) => {
        let count = 0;
        await thread.streamChat(request(prompt, `fake-model?tokens=${10 + i * 7}&tps=400&ttft=0`), () => count++);
        return count;
      }),
    );
    const [gap] = await thread.threadMetrics();
    expect(gap).toMatchObject({ name: 'ai_story_llm_token_gap_seconds', type: 'histogram' });
    const sample = (name: string, le?: string) => gap.values.find((v) => (v as { metricName?: string }).metricName === name && v.labels.le === le)!.value;
    // A gap between each two deltas of one stream, none between the last of one and the first of another.
    const gaps = deltas.reduce((sum, n) => sum + n - 1, 0);
    expect(sample('ai_story_llm_token_gap_seconds_count')).toBe(gaps);
    expect(sample('ai_story_llm_token_gap_seconds_bucket', '+Inf')).toBe(gaps);
    expect(sample('ai_story_llm_token_gap_seconds_sum')).toBeGreaterThan(0);

    await thread.close();
    expect(await thread.threadMetrics()).toEqual([]);
  } finally {
    await thread.close();
  }
});

test('a thread that ends fails its streams as a lost connection, and the next stream starts a new one', async () => {
  const thread = new LlmStreamThread();
  try {
    const deltas: LlmDelta[] = [];
    let firstDelta!: () => void;
    const started = new Promise<void>((resolve) => (firstDelta = resolve));
    const streaming = thread.streamChat(request('中途断线'), (d) => {
      deltas.push(d);
      firstDelta();
    });
    const waiting = thread.streamChat(request('还没开始', 'fake-model?tokens=3&ttft=5000'));
    await started;
    await thread.close();
    const [lost, lostBefore] = await Promise.all([streaming.catch((e: unknown) => e), waiting.catch((e: unknown) => e)]);
    expect(lost).toBeInstanceOf(LlmError);
    // Text had reached the run: the engine must restart it elsewhere, not carry on.
    expect(lost).toMatchObject({ code: 'network', retryable: true, afterFirstToken: true });
    expect(lostBefore).toMatchObject({ code: 'network', retryable: true, afterFirstToken: false });
    expect(deltas.length).toBeGreaterThan(0);

    let text = '';
    const again = await thread.streamChat(request('重新开始', 'fake-model?tokens=5&tps=400&ttft=0'), (d) => (text += d.text));
    expect(again.text).toBe(text);
    expect(text).toBe(expectedText({ model: 'fake-model?tokens=5', messages: [{ role: 'user', content: '重新开始' }] }));
  } finally {
    await thread.close();
  }
});
