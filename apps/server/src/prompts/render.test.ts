import { afterAll, describe, expect, it } from 'vitest';
import { TemplateRenderer } from './render-pool.ts';
import { TemplateError, TemplateLimitError, variablesUsed } from './render.ts';

const renderer = new TemplateRenderer();
const renderTemplate = (template: string, variables: Record<string, unknown>) => renderer.render(template, variables, 'the test template');
afterAll(() => renderer.close());

describe('rendering a template', () => {
  it('renders variables, conditions and filters', async () => {
    const out = await renderTemplate('主题：{{ topic }}{% if style %}（{{ style | upcase }}）{% endif %}', { topic: '星空', style: 'x' });
    expect(out).toBe('主题：星空（X）');
    expect(await renderTemplate('  plain text, nothing to render \n', {})).toBe('plain text, nothing to render');
  });

  it('cannot reach outside its data: no prototype walk, no file includes', async () => {
    expect(await renderTemplate('{{ topic.constructor }}|{{ topic.__proto__ }}|{{ constructor.constructor }}', { topic: 'a' })).toBe('||');
    await expect(renderTemplate("{% include '/etc/passwd' %}", {})).rejects.toThrow(/could not be rendered/);
    await expect(renderTemplate("{% render 'package.json' %}", {})).rejects.toThrow(/could not be rendered/);
  });

  it('refuses unknown filters and runaway loops with a clear error', async () => {
    await expect(renderTemplate('{{ x | shell }}', { x: 1 })).rejects.toThrow(/could not be rendered/);
    await expect(renderTemplate('{% for i in (1..100000000) %}{{ i }}{% endfor %}', {})).rejects.toThrow(TemplateLimitError);
    await expect(renderTemplate('{% assign x = "ab" %}{% for i in (1..30) %}{% assign x = x | append: x %}{% endfor %}', {})).rejects.toMatchObject({ limit: 'memory' });
  });

  it('renders the same template again from its parsed form, with new data each time', async () => {
    const template = '{% for s in shots %}{{ forloop.index }}:{{ s }};{% endfor %}';
    expect(await renderTemplate(template, { shots: ['a', 'b'] })).toBe('1:a;2:b;');
    expect(await renderTemplate(template, { shots: ['c'] })).toBe('1:c;');
  });

  it('lists the variables a template uses', () => {
    expect(variablesUsed('{{ a }} {{ b.c }} {% if d %}{% endif %}').sort()).toEqual(['a', 'b', 'd']);
  });

  it('does not count names the template defines itself', () => {
    const used = variablesUsed('{% assign n = a | append: b %}{{ n }}{% capture c %}x{% endcapture %}{{ c }}{% for s in shots %}{{ s.x }}{{ forloop.index }}{% endfor %}');
    expect(used.sort()).toEqual(['a', 'b', 'shots']);
  });

  it('refuses file tags when the template is parsed, wherever they are nested', () => {
    expect(() => variablesUsed("{% if x %}{% render 'a' %}{% endif %}")).toThrow(/render %\} tag is not available/);
    expect(() => variablesUsed("{% layout 'base' %}")).toThrow(/layout %\} tag is not available/);
  });
});

describe('the render workers', () => {
  it("are not needed for the studio's own templates, which render the same text without them", async () => {
    const pool = new TemplateRenderer({ threads: 1 });
    try {
      const ours = '改写：{{ original_text }}{% for s in shots %}[{{ forloop.index }}:{{ s }}]{% endfor %}';
      const data = { original_text: '一只猫', shots: ['a', 'b'] };
      const inWorker = await pool.render(ours, data, 'x');
      expect([inWorker, pool.sentToWorkers]).toEqual(['改写：一只猫[1:a][2:b]', 1]);
      pool.trust([ours]);
      expect(await pool.render(ours, data, 'x')).toBe(inWorker);
      expect(await pool.render(ours, { original_text: '狗', shots: [] }, 'x')).toBe('改写：狗');
      expect(pool.sentToWorkers).toBe(1);
      // The same words changed by a user are theirs: back to the sandbox.
      expect(await pool.render(`${ours} `, data, 'x')).toBe(inWorker);
      expect(pool.sentToWorkers).toBe(2);
    } finally {
      await pool.close();
    }
  });

  it('refuse a range larger than the memory budget before it is built, naming the template; the worker lives on', async () => {
    // The budget, not the worker's heap limit, is the guard: an 80 MB array can make V8 abort the whole
    // process rather than end the worker alone.
    const pool = new TemplateRenderer({ threads: 1, heapMb: 16, timeMs: 60_000 });
    try {
      const bomb = pool.render('{% for i in (1..9999999) %}{{ i }}{% endfor %}', {}, 'the rewrite template of “Mine”');
      await expect(bomb).rejects.toThrow(TemplateLimitError);
      await expect(bomb).rejects.toMatchObject({ limit: 'memory', message: expect.stringContaining('the rewrite template of “Mine”') });
      expect(pool.killed).toBe(0);
      expect(await pool.render('{{ a }}', { a: 'still here' }, 'x')).toBe('still here');
    } finally {
      await pool.close();
    }
  }, 120_000);

  it('end a worker whose render passes the hard time limit, counted from when the render began', async () => {
    const pool = new TemplateRenderer({ threads: 1, timeMs: 50 });
    try {
      const slow = '{% for i in (1..1000) %}{% for j in (1..1000) %}{% endfor %}{% endfor %}';
      const [first, second] = [pool.render(slow, {}, 'the slow template'), pool.render(slow, {}, 'the slow template')];
      await expect(first).rejects.toMatchObject({ limit: 'time', message: expect.stringMatching(/the slow template took too long/) });
      // The second waited in the queue while the first ran: it is stopped by its own render time, too.
      await expect(second).rejects.toMatchObject({ limit: 'time' });
      expect(pool.killed).toBe(2);
      await expect(pool.render('{{ a | nope }}', { a: 1 }, 'x')).rejects.toThrow(TemplateError);
      expect(pool.killed).toBe(2);
    } finally {
      await pool.close();
    }
  }, 120_000);
});
