import { vi } from 'vitest';
import { ProjectRepository } from '../src/projects/repository.ts';

/**
 * The next `count` access reads of project streams (ProjectRepository.ownerAndRoleToView) answer, then wait
 * until `release()`: a change made meanwhile lands between a stream's access read and its opening.
 * `read` resolves once they have all answered; later reads pass straight through.
 */
export function holdAccessReads(count = 1) {
  const ownerAndRole = ProjectRepository.prototype.ownerAndRoleToView;
  let reads = 0;
  let allRead!: () => void;
  const read = new Promise<void>((resolve) => (allRead = resolve));
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const spy = vi.spyOn(ProjectRepository.prototype, 'ownerAndRoleToView').mockImplementation(async function (this: ProjectRepository, projectId, userId) {
    const row = await ownerAndRole.call(this, projectId, userId);
    if (++reads > count) return row;
    if (reads === count) allRead();
    await held;
    return row;
  });
  return {
    read,
    release,
    restore: () => {
      release();
      spy.mockRestore();
    },
  };
}
