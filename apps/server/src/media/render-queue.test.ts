import { describe, expect, test } from 'vitest';
import { RenderQueue } from './render-queue.ts';

/** A task that runs until released, recording when it started. */
function gate(log: string[], name: string) {
  let release!: () => void;
  const done = new Promise<void>((r) => (release = r));
  const task = async () => {
    log.push(name);
    await done;
    return name;
  };
  return { task, release };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('RenderQueue', () => {
  test('projects with waiting tasks take turns, whatever order the tasks arrived in', async () => {
    const queue = new RenderQueue(1);
    const started: string[] = [];
    const first = gate(started, 'blocker');
    const running = queue.run('x', first.task);
    const gates = new Map<string, ReturnType<typeof gate>>();
    const results: Promise<string>[] = [];
    for (const name of ['a1', 'a2', 'a3', 'a4', 'b1', 'b2', 'c1']) {
      const g = gate(started, name);
      gates.set(name, g);
      results.push(queue.run(name[0], g.task));
    }
    expect(started).toEqual(['blocker']);
    first.release();
    await running;
    // Release each task as soon as it starts, so the queue moves one at a time.
    for (let i = 0; i < 7; i++) {
      await tick();
      gates.get(started.at(-1)!)!.release();
    }
    await Promise.all(results);
    expect(started).toEqual(['blocker', 'a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'a4']);
  });

  test('never runs more tasks at once than its concurrency', async () => {
    const queue = new RenderQueue(2);
    let active = 0;
    let peak = 0;
    const task = async () => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 5));
      active--;
    };
    await Promise.all(Array.from({ length: 12 }, (_, i) => queue.run(`p${i % 3}`, task)));
    expect(peak).toBe(2);
    expect(queue.runningCount).toBe(0);
    expect(queue.waitingCount).toBe(0);
  });

  test('a waiting task whose signal aborts is removed, never starts, and the ones behind move up', async () => {
    const queue = new RenderQueue(1);
    const started: string[] = [];
    const blocker = gate(started, 'blocker');
    const running = queue.run('a', blocker.task);
    const cancelled = new AbortController();
    let cancelledStarted = false;
    const doomed = queue.run(
      'a',
      async () => {
        cancelledStarted = true;
      },
      { signal: cancelled.signal },
    );
    const positions: number[] = [];
    const last = gate(started, 'last');
    const lastResult = queue.run('a', last.task, { onPosition: (p) => positions.push(p) });
    expect(positions).toEqual([2]);

    cancelled.abort();
    await expect(doomed).rejects.toMatchObject({ name: 'AbortError' });
    expect(positions).toEqual([2, 1]);
    expect(queue.waitingCount).toBe(1);

    blocker.release();
    await running;
    await tick();
    last.release();
    await expect(lastResult).resolves.toBe('last');
    expect(cancelledStarted).toBe(false);
    expect(started).toEqual(['blocker', 'last']);
  });

  test('an already aborted signal is refused without queueing', async () => {
    const queue = new RenderQueue(1);
    const controller = new AbortController();
    controller.abort();
    let ran = false;
    await expect(queue.run('a', async () => (ran = true), { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect(ran).toBe(false);
    expect(queue.waitingCount).toBe(0);
  });

  test('positions follow the round-robin start order and change as tasks start', async () => {
    const queue = new RenderQueue(1);
    const started: string[] = [];
    const blocker = gate(started, 'blocker');
    const running = queue.run('a', blocker.task);
    const seen: Record<string, number[]> = { a1: [], a2: [], b1: [] };
    const gates = Object.fromEntries(Object.keys(seen).map((n) => [n, gate(started, n)]));
    const results = Object.keys(seen).map((n) => queue.run(n[0], gates[n].task, { onPosition: (p) => seen[n].push(p) }));
    // a1, a2 queued for project a; b1 arrives last but starts before a2.
    expect(seen).toEqual({ a1: [1], a2: [2, 3], b1: [2] });
    blocker.release();
    await running;
    await tick();
    expect(started.at(-1)).toBe('a1');
    expect(seen).toEqual({ a1: [1], a2: [2, 3, 2], b1: [2, 1] });
    for (const n of ['a1', 'b1', 'a2']) {
      gates[n].release();
      await tick();
    }
    await Promise.all(results);
    expect(started).toEqual(['blocker', 'a1', 'b1', 'a2']);
  });

  test("a project's tasks start in the order of the places they reserved, whichever is given first; other projects do not wait", async () => {
    const queue = new RenderQueue(1);
    const started: string[] = [];
    const blocker = gate(started, 'blocker');
    const running = queue.run('x', blocker.task);
    const places = [1, 2, 3].map((order) => queue.reserve('a', order));
    const gates = Object.fromEntries(['a1', 'a2', 'a3', 'b1'].map((n) => [n, gate(started, n)]));
    const seen: Record<string, number[]> = { a1: [], a2: [], a3: [] };
    const results = [3, 2].map((order) => places[order - 1].run(gates[`a${order}`].task, { onPosition: (p) => seen[`a${order}`].push(p) }));
    // Places count from the reservation: a3 is given first but is third in line.
    expect(seen).toEqual({ a1: [], a2: [2], a3: [3] });
    blocker.release();
    await running;
    await tick();
    // a1 has not been given its task yet: its project waits, another project's task goes meanwhile.
    results.push(queue.run('b', gates.b1.task));
    await tick();
    expect(started).toEqual(['blocker', 'b1']);
    results.push(places[0].run(gates.a1.task, { onPosition: (p) => seen.a1.push(p) }));
    for (const n of ['b1', 'a1', 'a2', 'a3']) {
      gates[n].release();
      await tick();
    }
    await Promise.all(results);
    expect(started).toEqual(['blocker', 'b1', 'a1', 'a2', 'a3']);
    expect(queue.waitingCount).toBe(0);
  });

  test('a released place lets the tasks behind it start; run later, it goes in at its order again', async () => {
    const queue = new RenderQueue(1);
    const started: string[] = [];
    const [first, second, third] = [1, 2, 3].map((order) => queue.reserve('a', order));
    const gates = Object.fromEntries(['a1', 'a2', 'a3'].map((n) => [n, gate(started, n)]));
    const results = [second.run(gates.a2.task), third.run(gates.a3.task)];
    await tick();
    expect(started).toEqual([]); // behind the first place, though the slot is free
    first.release();
    first.release(); // twice is once
    await tick();
    expect(started).toEqual(['a2']);
    // Back from elsewhere (a vendor): its fitting goes before the third shot, which still waits.
    results.push(first.run(gates.a1.task));
    for (const n of ['a2', 'a1', 'a3']) {
      gates[n].release();
      await tick();
    }
    await Promise.all(results);
    expect(started).toEqual(['a2', 'a1', 'a3']);
  });

  test('a task that throws frees its slot and rejects only its own caller', async () => {
    const queue = new RenderQueue(1);
    const failing = queue.run('a', async () => {
      throw new Error('boom');
    });
    const next = queue.run('a', async () => 'ok');
    await expect(failing).rejects.toThrow('boom');
    await expect(next).resolves.toBe('ok');
  });
});
