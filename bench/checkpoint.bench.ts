/**
 * What one checkpoint costs (not a test): the new text of every live run saved in one statement, once
 * a second (runs/service.ts). It measures the statement the studio sends, the columns as four arrays
 * (RunRepository.appendChunks), beside the multi-row VALUES list it replaced, whose SQL changed with
 * the count of live runs. Columns: the studio's CPU (PGlite's worker thread included), the whole
 * machine's (PostgreSQL's backend included) and the wall time, each per checkpoint.
 *
 *   node --import tsx bench/checkpoint.bench.ts [--runs 400] [--checkpoints 40] [--db postgres|pglite]
 *
 * The chunks' foreign key to their run is dropped in the bench's database, so no runs need to exist.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'drizzle-orm';
import { openDatabase } from '../apps/server/src/db/client.ts';
import { runTextChunks } from '../apps/server/src/db/schema.ts';
import { RunRepository } from '../apps/server/src/runs/repository.ts';
import { benchDatabase, type DbKind } from './relay.bench.ts';
import { machineBusyMs } from './relay.bench.ts';

type Chunk = { runId: string; seq: number; offset: number; text: string };

export async function runCheckpointBench(runs = 400, checkpoints = 40, db: DbKind = 'postgres') {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ai-story-bench-'));
  const pg = db === 'postgres' ? await benchDatabase(process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres') : null;
  const database = await openDatabase({ dataDir, databaseUrl: pg?.url });
  try {
    await database.db.execute(sql.raw('alter table run_text_chunks drop constraint if exists run_text_chunks_run_id_stage_runs_id_fk'));
    const repo = new RunRepository(database.db);
    const variants: [string, (chunks: Chunk[]) => Promise<unknown>][] = [
      ['four arrays (the studio)', (chunks) => repo.appendChunks(chunks)],
      ['VALUES list (before)', async (chunks) => database.db.insert(runTextChunks).values(chunks)],
    ];
    const ids = Array.from({ length: runs }, () => randomUUID());
    let seq = 0;
    // About a second of a model's Chinese text a run; the count of live runs changes between checkpoints as runs start and end.
    const batch = (n: number) => ids.slice(0, n).map((runId) => ({ runId, seq, offset: seq * 40, text: '这是模型刚写出的一段文字，大约一秒钟的量。'.repeat(2) }));
    const rows: Record<string, unknown>[] = [];
    for (let round = 1; round <= 2; round++) {
      for (const [label, save] of round === 1 ? variants : [...variants].reverse()) {
        const cpu0 = process.cpuUsage();
        const machine0 = machineBusyMs();
        const t0 = performance.now();
        for (let i = 0; i < checkpoints; i++, seq++) await save(batch(runs - (i % 7)));
        const cpu = process.cpuUsage(cpu0);
        const per = (ms: number) => (ms / checkpoints).toFixed(2);
        rows.push({ round, statement: label, 'studio CPU ms': per((cpu.user + cpu.system) / 1000), 'machine CPU ms': per(machineBusyMs() - machine0), 'wall ms': per(performance.now() - t0) });
      }
    }
    console.log(`${db}: a checkpoint of ${runs} runs, ${checkpoints} a round; per checkpoint:`);
    console.table(rows);
    return rows;
  } finally {
    await database.close();
    await pg?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '400' }, checkpoints: { type: 'string', default: '40' }, db: { type: 'string', default: 'postgres' } } });
  await runCheckpointBench(Number(values.runs), Number(values.checkpoints), values.db as DbKind);
}
