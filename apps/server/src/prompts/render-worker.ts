import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { Template } from 'liquidjs';
import { engine, failed, type RenderResult } from './render.ts';

/** One render, posted by render-pool.ts. `id` lets the pool start the hard time limit when it begins here. */
export interface RenderTask {
  id: number;
  content: string;
  variables: Record<string, unknown>;
}

/** A worker renders the same few templates over and over (one per stage and set): parse each once. */
const CACHE_SIZE = 200;
const parsed = new Map<string, Template[]>();

function parse(content: string): Template[] {
  const key = createHash('sha256').update(content).digest('base64url');
  let templates = parsed.get(key);
  if (templates) {
    parsed.delete(key); // re-inserted below: the Map's order is the least recently used first
  } else {
    templates = engine.parse(content);
    if (parsed.size >= CACHE_SIZE) parsed.delete(parsed.keys().next().value!);
  }
  parsed.set(key, templates);
  return templates;
}

export default async function render(task: RenderTask): Promise<RenderResult> {
  parentPort?.postMessage({ renderStarted: task.id });
  try {
    return { text: (await engine.render(parse(task.content), task.variables)).trim() };
  } catch (err) {
    return failed(err);
  }
}
