import type { RunStatus, StageStatus } from '@ai-story/contracts';

/** One colour language for stage and run statuses, used by tags, dots and the pipeline row. */
export type Tone = 'neutral' | 'active' | 'success' | 'danger' | 'warning' | 'muted';

export function statusTone(status: StageStatus | RunStatus): Tone {
  switch (status) {
    case 'running':
    case 'queued':
      return 'active';
    case 'completed':
      return 'success';
    case 'failed':
      return 'danger';
    case 'cancelled':
    case 'interrupted':
      return 'warning';
    case 'skipped':
      return 'muted';
    case 'pending':
      return 'neutral';
  }
}

export const TONE_TAG: Record<Tone, 'primary' | 'success' | 'danger' | 'warning' | 'info'> = {
  neutral: 'info',
  active: 'primary',
  success: 'success',
  danger: 'danger',
  warning: 'warning',
  muted: 'info',
};
