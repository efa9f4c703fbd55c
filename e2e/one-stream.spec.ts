import { expect, signIn, test } from './fixtures';

test.use({ locale: 'zh-CN' });

// One stream per tab: the project stream asks for no tokens (?tokens=0), the run stream carries
// them. Every event stream the page opens is copied (the page's own `fetch`, wrapped before any
// script runs) and its token events are counted, so a token that arrives twice — over two
// connections, or by attaching twice to the same run — shows up as text written twice.
test('a rewrite in the page receives every token once, over all its connections', async ({ page, context, studio }) => {
  await page.addInitScript(() => {
    type Seen = { url: string; tokens: string[]; events: number };
    const seen: Seen[] = [];
    (window as unknown as { __sse: Seen[] }).__sse = seen;
    const original = window.fetch.bind(window);
    window.fetch = async (...args: Parameters<typeof fetch>) => {
      const res = await original(...args);
      if (!res.body || !(res.headers.get('content-type') ?? '').includes('text/event-stream')) return res;
      const [forPage, forCount] = res.body.tee();
      const entry: Seen = { url: res.url, tokens: [], events: 0 };
      seen.push(entry);
      void (async () => {
        const reader = forCount.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n/g, '\n');
          for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
            const frame = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = frame
              .split('\n')
              .filter((line) => line.startsWith('data:'))
              .map((line) => line.slice(5).replace(/^ /, ''))
              .join('\n');
            if (!data) continue;
            entry.events++;
            const event = JSON.parse(data) as { type: string; content?: string };
            if (event.type === 'token') entry.tokens.push(event.content ?? '');
          }
        }
      })().catch(() => undefined);
      return new Response(forPage, { status: res.status, statusText: res.statusText, headers: res.headers });
    };
  });

  await signIn(context, studio);
  const headers = { origin: studio.baseURL };
  const created = await page.request.post('/api/v1/projects/', {
    data: { name: '一条流', original_topic: '月亮为什么总是同一面朝向地球？从潮汐锁定讲起，说说地月系统的过去和未来。' },
    headers,
  });
  expect(created.status()).toBe(201);
  const projectId = (await created.json()).id as string;

  await page.goto(`/projects/${projectId}/rewrite`);
  await page.getByTestId('rewrite-provider').click();
  await page.locator('.el-select-dropdown__item:visible', { hasText: '离线演示' }).first().click();
  await page.getByTestId('rewrite-generate').click();
  await expect(page.getByTestId('rewrite-phase')).toHaveAttribute('data-phase', 'completed', { timeout: 60_000 });

  const project = await (await page.request.get(`/api/v1/projects/${projectId}/`)).json();
  const runId = project.stages.find((s: { stage_type: string }) => s.stage_type === 'rewrite').current_run_id as string;
  const run = await (await page.request.get(`/api/v1/runs/${runId}/`)).json();
  expect(run.status).toBe('completed');
  const finalText = run.text as string;
  expect(finalText.length).toBeGreaterThan(20);

  type Seen = { url: string; tokens: string[]; events: number };
  const seen = () => page.evaluate(() => (window as unknown as { __sse: Seen[] }).__sse.map((s) => ({ ...s, tokens: [...s.tokens] })));
  // The copies are read beside the page's own reader: wait until they have caught up.
  await expect.poll(async () => (await seen()).flatMap((s) => s.tokens).join('').length, { timeout: 10_000 }).toBeGreaterThanOrEqual(finalText.length);
  const streams = await seen();

  // Both streams were open: the project's (asking for no tokens) and the run's.
  const projectStreams = streams.filter((s) => new URL(s.url).pathname === `/api/v1/projects/${projectId}/events`);
  const runStreams = streams.filter((s) => new URL(s.url).pathname === `/api/v1/runs/${runId}/events`);
  expect(projectStreams.length).toBeGreaterThan(0);
  expect(projectStreams.every((s) => new URL(s.url).searchParams.get('tokens') === '0')).toBe(true);
  expect(projectStreams.reduce((n, s) => n + s.events, 0)).toBeGreaterThan(0);
  expect(runStreams).toHaveLength(1);
  expect(runStreams[0].tokens.length).toBeGreaterThan(1);

  // Every token once: all token contents the page received, over all its connections, are the text once.
  const received = streams.flatMap((s) => s.tokens).join('');
  expect(received).toBe(finalText);
  expect(projectStreams.flatMap((s) => s.tokens)).toEqual([]);
});
