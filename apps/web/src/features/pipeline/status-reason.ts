import type { ProjectStage } from '@ai-story/contracts';
import { i18n } from '@/i18n';

/** The server's reason codes (projects/status-reasons.ts), worded here in the user's language. */
const BY_CODE: Record<string, string> = {
  skipped_by_user: 'pipeline.reasons.skippedByUser',
  stage_not_built: 'pipeline.reasons.notAvailable',
  stopped_by_user: 'pipeline.reasons.stoppedByUser',
  server_stopped: 'pipeline.reasons.serverStopped',
  // A failure's own words (often a vendor's) are shown as they were said, quoted.
  run_failed: 'pipeline.reasons.runFailed',
};

type Reason = Pick<ProjectStage, 'status_reason' | 'status_reason_code' | 'status_reason_params'>;

export function statusReasonText(stage: Reason): string {
  if (!stage.status_reason) return '';
  const key = stage.status_reason_code ? BY_CODE[stage.status_reason_code] : undefined;
  return key ? i18n.global.t(key, { detail: stage.status_reason, ...stage.status_reason_params }) : stage.status_reason;
}
