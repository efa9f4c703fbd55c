import type { MediaItem } from '@ai-story/contracts';
import pLimit from 'p-limit';
import type { ClientProvider } from '../providers/service.ts';
import type { MediaServices, MediaStageDefinition } from '../stages/definition.ts';
import { noUsage, type Outcome } from './execution.ts';
import type { LiveRun } from './live-run.ts';
import type { RunRepository } from './repository.ts';

export interface MediaExecutionDeps {
  repo: RunRepository;
  services: MediaServices;
}

/** The first words of an error, for a task's `message` (never a stack). */
const reasonOf = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 500);

/**
 * Runs a media stage (DESIGN §9): one task per shot with bounded concurrency; each finished item is
 * saved before its event goes out, so a cancelled, interrupted or crashed run keeps what it finished.
 * Some shots failing ends the run completed with `failed_shot_ids`; all failing ends it failed.
 */
export async function executeMedia(run: LiveRun, providers: ClientProvider[], d: MediaExecutionDeps): Promise<Outcome> {
  const definition = run.definition as MediaStageDefinition;
  const { signal } = run.abort;
  const shots = definition.shots(run.input, run.ctx);
  const failed: { shotId: string; reason: string }[] = [];
  let done = 0;
  for (const shot of shots) run.task(shot.id, 'queued');
  run.mediaProgress(0, shots.length, { code: 'shots', params: { done: 0, total: shots.length } });

  const limit = pLimit(Math.max(1, definition.concurrency(run.ctx)));
  // Items are saved one after another, so their events go out in the order of their saved sequence
  // numbers: a replay from the database then shows what a live follower saw.
  let saving: Promise<unknown> = Promise.resolve();
  const saveInOrder = (save: () => Promise<void>) => {
    const next = saving.then(save);
    saving = next.catch(() => {});
    return next;
  };
  await Promise.all(
    shots.map((shot) =>
      limit(async () => {
        if (signal.aborted) return run.task(shot.id, 'cancelled');
        run.task(shot.id, 'running', { percent: 0 });
        try {
          const items = await definition.runShot({
            shot,
            input: run.input,
            ctx: run.ctx,
            signal,
            providers,
            services: d.services,
            progress: (percent, message) => run.task(shot.id, 'running', { percent, ...(message && { message }) }),
            waiting: (position) => run.task(shot.id, 'queued', { position }),
          });
          await saveInOrder(async () => {
            for (const item of items) {
              await d.repo.saveItem({ runId: run.id, seq: run.nextItemSeq(), shotId: shot.id, kind: definition.itemEvent, mediaId: item.media_id, item });
              run.addItem(item);
            }
          });
          // A stage that reused earlier work (its cache) marks the items `cached`, and the task says so.
          const cached = items.length > 0 && items.every((i) => i.cached === true);
          run.task(shot.id, cached ? 'cached' : 'succeeded', { percent: 100 });
        } catch (err) {
          if (signal.aborted) return run.task(shot.id, 'cancelled');
          failed.push({ shotId: shot.id, reason: reasonOf(err) });
          run.task(shot.id, 'failed', { message: reasonOf(err) });
        }
        done++;
        run.mediaProgress(done, shots.length, { code: 'shots', params: { done, total: shots.length } });
      }),
    ),
  );

  if (signal.aborted) return { status: 'stopped' };
  if (shots.length > 0 && failed.length === shots.length) {
    return { status: 'failed', error: new Error(`Every shot failed; the first: ${failed[0].reason}`), code: 'all_shots_failed' };
  }
  let finished: Record<string, unknown> | undefined;
  if (definition.finish) {
    try {
      finished = await definition.finish({
        items: run.mediaItems,
        input: run.input,
        ctx: run.ctx,
        signal,
        services: d.services,
        // The finishing step's own percent and step code (e.g. the export's 'compose', 'cover', 'draft').
        progress: (percent, step) => run.finishProgress(shots.length, percent, step ?? 'finishing'),
      });
    } catch (err) {
      if (signal.aborted) return { status: 'stopped' };
      return { status: 'failed', error: err instanceof Error ? err : new Error(String(err)) };
    }
  }
  const output = definition.output(run.mediaItems as MediaItem[], failed.map((f) => f.shotId), run.input, run.ctx, finished);
  // Paid media items carry their `cost` (units × the provider's price_per_unit); by default the run's usage sums them.
  const durationMs = Date.now() - run.startedAt;
  const cost = run.mediaItems.reduce((sum: number, i) => sum + (typeof i.cost === 'number' ? i.cost : 0), 0);
  return { status: 'completed', output, usage: definition.usage?.(run.mediaItems as MediaItem[], durationMs) ?? { ...noUsage(durationMs), cost } };
}
