import { describe, expect, it } from 'vitest';
import type { ProjectRepository } from './repository.ts';
import { ProjectService } from './service.ts';

describe('telling listeners of a project change', () => {
  const service = () => new ProjectService({} as ProjectRepository);

  it("reaches every project's listeners, and of one project's only that project's", () => {
    const projects = service();
    const heard: string[] = [];
    projects.onChange((id) => heard.push(`any:${id}`));
    const stopA = projects.onChangeOf('a', () => heard.push('a1'));
    projects.onChangeOf('a', () => heard.push('a2'));
    projects.onChangeOf('b', () => heard.push('b1'));

    projects.notifyChange('a');
    expect(heard.splice(0)).toEqual(['any:a', 'a1', 'a2']);
    projects.notifyChange('c');
    expect(heard.splice(0)).toEqual(['any:c']);

    stopA();
    projects.notifyChange('a');
    projects.notifyChange('b');
    expect(heard.splice(0)).toEqual(['any:a', 'a2', 'any:b', 'b1']);
  });

  it('lets a listener stop itself and others of its project while being told', () => {
    const projects = service();
    const heard: string[] = [];
    const stops: (() => void)[] = [];
    // An ended stream unsubscribes from inside its own listener (access revoked: the stream closes).
    stops.push(projects.onChangeOf('a', () => (heard.push('first'), stops.forEach((s) => s()))));
    stops.push(projects.onChangeOf('a', () => heard.push('second')));
    projects.notifyChange('a');
    expect(heard).toEqual(['first']);
    projects.notifyChange('a');
    expect(heard).toEqual(['first']);
  });
});
