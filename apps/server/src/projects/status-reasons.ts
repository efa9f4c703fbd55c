/**
 * Why a stage is in its state. The text is kept as it always was (API clients read `status_reason`);
 * the code and parameters beside it are derived here, from the same constants the setters use, so the
 * web app can word them in either language. Anything else is a failure's own message (often a vendor's
 * words), passed as `detail` to be shown quoted.
 */
export const REASONS = {
  stopped_by_user: 'Stopped by the user',
  server_stopped: 'The server stopped during the run',
  skipped_by_user: 'Skipped by the user',
  stage_not_built: 'Not available yet: this media stage is still being built',
} as const;

const BY_TEXT = new Map<string, string>(Object.entries(REASONS).map(([code, text]) => [text, code]));

export function reasonCode(text: string | null): { code: string | null; params: Record<string, string> } {
  if (text === null) return { code: null, params: {} };
  const code = BY_TEXT.get(text);
  return code ? { code, params: {} } : { code: 'run_failed', params: { detail: text } };
}
