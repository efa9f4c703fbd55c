import { describe, expect, it } from 'vitest';
import { renderTemplate, variablesUsed } from './render.ts';

describe('renderTemplate', () => {
  it('renders variables, conditions and filters', async () => {
    const out = await renderTemplate('主题：{{ topic }}{% if style %}（{{ style | upcase }}）{% endif %}', { topic: '星空', style: 'x' });
    expect(out).toBe('主题：星空（X）');
  });

  it('cannot reach outside its data: no prototype walk, no file includes', async () => {
    expect(await renderTemplate('{{ topic.constructor }}|{{ topic.__proto__ }}|{{ constructor.constructor }}', { topic: 'a' })).toBe('||');
    await expect(renderTemplate("{% include '/etc/passwd' %}", {})).rejects.toThrow(/could not be rendered/);
    await expect(renderTemplate("{% render 'package.json' %}", {})).rejects.toThrow(/could not be rendered/);
  });

  it('refuses unknown filters and runaway loops with a clear error', async () => {
    await expect(renderTemplate('{{ x | shell }}', { x: 1 })).rejects.toThrow(/could not be rendered/);
    await expect(renderTemplate('{% for i in (1..100000000) %}{{ i }}{% endfor %}', {})).rejects.toThrow(/could not be rendered/);
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
