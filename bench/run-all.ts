/**
 * `npm run bench`: every benchmark, one after the other (numbers, not pass/fail).
 * Machines are shared and noisy: compare the columns of one run, not runs of different days.
 */
import { printTable, runLlmClientBench } from './llm-client.bench.ts';
import { runCheckpointBench } from './checkpoint.bench.ts';
import { runFollowersBench } from './followers.bench.ts';
import { runRelayBench } from './relay.bench.ts';
import { runRunCostBench } from './run-cost.bench.ts';

console.log('\n== LLM client overhead: the simulated upstream read directly vs through streamChat');
printTable(await runLlmClientBench());
console.log('\n== The run engine under load: the simulated upstream read directly vs through the studio on PostgreSQL and PGlite');
await runRelayBench([1, 50, 200, 400], ['bare', 'postgres', 'pglite']);
console.log('\n== What a run costs to start and finish: CPU per 3-token run, the studio and the whole machine');
await runRunCostBench(1000, 3, 'postgres');
console.log('\n== What a checkpoint costs: 400 live runs\' new text in one statement, the studio and the whole machine');
await runCheckpointBench(400, 40, 'postgres');
console.log('\n== Scale-out: 5,000 followers of 200 live runs, one studio vs two studios + Redis behind nginx');
await runFollowersBench(200, 25);
console.log('\n== Images: the offline model, and the studio CPU per vendor image');
await import('./images.bench.ts');
