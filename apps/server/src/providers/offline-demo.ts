import { startFakeLlm } from '@ai-story/fake-llm';

/** The api_url stored for the offline demo provider; resolved to the in-process upstream at call time. */
export const OFFLINE_DEMO_URL = 'builtin:offline-demo';
/** Named in both languages, as the shipped template set is: the web app shows the reader's half. */
export const OFFLINE_DEMO_NAME = '离线演示模型 / Offline demo model';

/**
 * The bundled simulated upstream, served in-process on a loopback port the first time a run needs it,
 * so a newcomer can try every LLM stage with no key and no network.
 */
export class OfflineDemoUpstream {
  private started?: Promise<{ url: string; close(): Promise<void> }>;

  url = async () => (await (this.started ??= startFakeLlm({ port: 0, host: '127.0.0.1' }))).url;

  async close() {
    if (this.started) await (await this.started).close();
  }
}
