import type { RunUsage } from '@ai-story/contracts';
import type { FastifyBaseLogger } from 'fastify';
import { LlmError, type LlmResult } from '../providers/llm-client.ts';
import type { LlmStreamThread } from '../providers/llm-stream-thread.ts';
import type { EndCall, Refusal } from '../providers/selector.ts';
import type { ClientProvider, ProviderService } from '../providers/service.ts';
import { StageOutputError, type LlmStageDefinition } from '../stages/definition.ts';
import type { Outcome } from './execution.ts';
import type { LiveRun } from './live-run.ts';
import type { RunRepository } from './repository.ts';
import { cleanDeep } from './well-formed.ts';

export interface LlmExecutionDeps {
  providers: ProviderService;
  /** Where upstream streams are read (off the studio's thread). */
  llm: Pick<LlmStreamThread, 'streamChat'>;
  repo: RunRepository;
  log: FastifyBaseLogger;
}

type ChatMessages = { role: 'system' | 'user'; content: string }[];

/** What a stage's run asks its model. */
export const chatMessages = (definition: LlmStageDefinition, prompt: string): ChatMessages => [
  { role: 'system', content: definition.systemPrompt },
  { role: 'user', content: prompt },
];

const beginCall = (provider: ClientProvider, d: Pick<LlmExecutionDeps, 'providers'>) =>
  d.providers.selector.begin(provider.id, { rateLimitRpm: provider.rate_limit_rpm, rateLimitRpd: provider.rate_limit_rpd });

/**
 * The first provider's call, sent while the run's row is being saved (issue 17): a start then waits
 * for the database once (its access read) before the model is asked, not twice, and the model's own
 * time to its first token hides the insert. Deltas that arrive before the run is live are held and
 * handed over in order; a run that is never saved (a conflict, a failed insert) cancels the call.
 */
export class EarlyCall {
  /** The provider's rate-limit slot: a call, or why its limit refused one (then nothing is sent). */
  readonly slot: Promise<EndCall | Refusal>;
  private readonly stream: Promise<LlmResult | undefined>;
  private readonly abort = new AbortController();
  private held: string[] = [];
  /** The run that took the call: deltas go straight to it from then on. */
  private run?: LiveRun;
  private taken = false;

  constructor(
    provider: ClientProvider,
    messages: ChatMessages,
    responseFormat: LlmStageDefinition['responseFormat'],
    d: Pick<LlmExecutionDeps, 'providers' | 'llm'>,
  ) {
    this.slot = Promise.resolve(beginCall(provider, d));
    this.stream = this.slot.then((slot) =>
      typeof slot === 'function'
        ? d.llm.streamChat({ provider, messages, response_format: responseFormat, signal: this.abort.signal }, (delta) => {
            if (delta.kind !== 'text') return;
            if (this.run) this.run.onDelta(delta.text);
            else this.held.push(delta.text);
          })
        : undefined,
    );
    // Whoever takes the call hears how it ended; one never taken must not end as an unhandled rejection.
    this.stream.catch(() => {});
  }

  /**
   * The run is live: it takes the stream, what came so far first, and its cancel reaches the call.
   */
  take(run: LiveRun): Promise<LlmResult> {
    this.taken = true;
    const { signal } = run.abort;
    if (signal.aborted) this.abort.abort();
    else signal.addEventListener('abort', () => this.abort.abort(), { once: true });
    try {
      for (const text of this.held) run.onDelta(text);
    } catch (err) {
      this.abort.abort();
      return Promise.reject(err);
    }
    this.held = [];
    this.run = run;
    return this.stream as Promise<LlmResult>;
  }

  /** The run was not saved: the call stops, and its slot is given back once it has. */
  cancel() {
    if (this.taken) return;
    this.abort.abort();
    void Promise.all([this.slot, this.stream.catch(() => undefined)]).then(
      ([slot]) => typeof slot === 'function' && slot('ok'),
      () => {},
    );
  }
}

/**
 * Streams an LLM stage from the first provider that answers (DESIGN §4): retryable faults fail over
 * to the next provider; a fault after the first token restarts there with a `reset` event. `early`:
 * the first provider's call, already sent while the run was being saved.
 */
export async function executeLlm(run: LiveRun, candidates: ClientProvider[], prompt: string, d: LlmExecutionDeps, early?: EarlyCall): Promise<Outcome> {
  const definition = run.definition as LlmStageDefinition;
  const messages = chatMessages(definition, prompt);
  let lastError: Error | undefined;
  for (let i = 0; i < candidates.length; i++) {
    const provider = candidates[i];
    run.provider = provider;
    if (i > 0) {
      await d.repo.update(run.id, { providerId: provider.id, providerName: provider.name, model: provider.model_name, isSimulated: provider.is_simulated });
      run.emit({ type: 'info', code: 'switching', params: { provider: provider.name, model: provider.model_name }, message: `Switching to ${provider.name} (${provider.model_name})` });
    }
    const sent = i === 0 ? early : undefined; // sent to candidates[0]
    const endCall = await (sent ? sent.slot : beginCall(provider, d));
    if (typeof endCall !== 'function') {
      // Its limit filled up since the run started (another run, or another instance, took the last slot).
      lastError = new LlmError('rate_limited', `${provider.name} is ${endCall.reason}`, true, false, { retryAfterMs: endCall.retryAfterMs });
      continue;
    }
    try {
      const final = await (sent ? sent.take(run) : streamAttempt(run, provider, messages, d, definition.responseFormat));
      endCall('ok');
      run.flush();
      let output: unknown;
      try {
        // A JSON escape may still carry half an emoji (`"\ud83d"`): the parsed output is cleaned too.
        output = cleanDeep(definition.parseOutput(run.text, run.input, run.ctx, (note) => run.emit({ type: 'info', ...note })));
      } catch (err) {
        if (err instanceof StageOutputError) return { status: 'failed', error: err, code: 'bad_output' };
        throw err;
      }
      // The usage row is saved in the ending's transaction (RunService.finishCompleted).
      const { usage, save } = callUsage(run, provider, final, 'ok', d);
      return { status: 'completed', output, usage, saveUsage: save };
    } catch (err) {
      endCall(err instanceof LlmError && err.code === 'cancelled' ? 'ok' : 'failed');
      lastError = err as Error;
      if (run.abort.signal.aborted) break;
      const e = err instanceof LlmError ? err : undefined;
      if (e) await savedOrLogged(run, callUsage(run, provider, null, e.code, d).save(), d);
      if (!(i + 1 < candidates.length && e?.retryable)) break;
      // The partial answer came from a provider that broke; clients discard it and follow the restart.
      if (e.afterFirstToken) run.resetText(`${provider.name} failed mid-answer (${e.message}); restarting on another provider`);
    }
  }
  if (run.abort.signal.aborted) {
    if (run.provider) await savedOrLogged(run, callUsage(run, run.provider, null, run.stopReason ?? 'cancelled', d).save(), d);
    return { status: 'stopped' };
  }
  return { status: 'failed', error: lastError ?? new Error('No provider answered') };
}

/** Streams one attempt from one provider into the run. */
function streamAttempt(run: LiveRun, provider: ClientProvider, messages: ChatMessages, d: LlmExecutionDeps, responseFormat?: 'json_object') {
  return d.llm.streamChat({ provider, messages, response_format: responseFormat, signal: run.abort.signal }, (delta) => {
    if (delta.kind === 'text') run.onDelta(delta.text);
  });
}

/** A call's usage (its cost known at once) and `save`, which writes its row. */
function callUsage(run: LiveRun, provider: ClientProvider, final: LlmResult | null, outcome: string, d: LlmExecutionDeps) {
  const usage = final?.usage ?? { prompt_tokens: 0, completion_tokens: run.tokens, estimated: true };
  const durationMs = final?.duration_ms ?? Date.now() - run.startedAt;
  const { cost, save } = d.providers.llmUsage(provider, {
    runId: run.id,
    promptTokens: usage.prompt_tokens,
    completionTokens: usage.completion_tokens,
    estimated: usage.estimated,
    ttftMs: final?.ttft_ms ?? null,
    durationMs,
    outcome,
  });
  const runUsage: RunUsage = { prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens, estimated: usage.estimated, ttft_ms: final?.ttft_ms ?? null, duration_ms: durationMs, cost };
  return { usage: runUsage, save };
}

/** A usage row that failed to save is bookkeeping lost, never the run's failure: logged, and the run goes on. */
export const logUsageNotSaved = (log: FastifyBaseLogger, runId: string, err: unknown) => log.warn({ err, runId }, 'usage row not saved');

const savedOrLogged = (run: { id: string }, saved: Promise<unknown>, d: Pick<LlmExecutionDeps, 'log'>) =>
  saved.catch((err: unknown) => logUsageNotSaved(d.log, run.id, err));
