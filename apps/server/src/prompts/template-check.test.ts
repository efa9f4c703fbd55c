import type { TemplateVariable } from '@ai-story/contracts';
import { afterAll, describe, expect, it } from 'vitest';
import { TemplateRenderer } from './render-pool.ts';
import { TemplateLimitError } from './render.ts';
import { checkTemplate, tryTemplate } from './template-check.ts';

const renderer = new TemplateRenderer();
const render = (content: string, data: Record<string, unknown>) => renderer.render(content, data, 'the test template');
afterAll(() => renderer.close());

const declared: TemplateVariable[] = [
  { name: 'topic', type: 'string', description: '', sample: '星空' },
  { name: 'note', type: 'string', description: '', sample: '' },
  { name: 'length', type: 'number', description: '', sample: null },
];

describe('checkTemplate', () => {
  it('names the variables its stage does not declare', () => {
    expect(checkTemplate('{{ topic }}{{ mood }}{% if extra.x %}{% endif %}', declared)).toEqual({ used: ['topic', 'mood', 'extra'], unknown: ['mood', 'extra'], error: null });
  });

  it('reports a syntax error instead of throwing', () => {
    expect(checkTemplate('{% if topic %}', declared).error).toMatch(/not closed/);
    expect(checkTemplate('{{ topic | shell }}', declared).error).toMatch(/undefined filter/);
  });
});

describe('tryTemplate', () => {
  it('renders with the samples, overridden by the given values', async () => {
    expect(await tryTemplate('{{ topic }}-{{ length }}', declared, { length: 300 }, render)).toEqual({ rendered: '星空-300', missing: [], unknown: [], error: null });
  });

  it('says what is missing: declared without a sample and not given, or used and given empty', async () => {
    const result = await tryTemplate('{{ topic }}{{ note }}', declared, { topic: '  ' }, render);
    expect(result.missing).toEqual(['length', 'topic']);
    expect(result.error).toBeNull();
  });

  it('answers errors as values and keeps given data inert', async () => {
    expect((await tryTemplate("{% include '/etc/passwd' %}", declared, {}, render)).error).toMatch(/include %\} tag is not available/);
    const tricks = await tryTemplate('[{{ topic.constructor }}|{{ constructor.name }}|{{ __proto__ }}]', declared, JSON.parse('{"__proto__": "given"}'), render);
    expect(tricks.rendered).toBe('[||given]'); // a given `__proto__` is only a name, never the prototype
    expect(tricks.unknown).toEqual(['constructor', '__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('throws a render a limit stopped: that is not a result but a template to fix', async () => {
    await expect(tryTemplate('{% for i in (1..9999999) %}{{ i }}{% endfor %}', declared, {}, render)).rejects.toThrow(TemplateLimitError);
  });
});
