import { i18n } from '@/i18n';

/** The server's reasons are English sentences; the ones it is known to write read in the user's language. */
const KNOWN: Record<string, string> = {
  'Skipped by the user': 'pipeline.reasons.skippedByUser',
  'Not available yet: this media stage is still being built': 'pipeline.reasons.notAvailable',
};

export function statusReasonText(reason: string | null | undefined): string {
  if (!reason) return '';
  const key = KNOWN[reason];
  return key ? i18n.global.t(key) : reason;
}
