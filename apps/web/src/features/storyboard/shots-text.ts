import { Shot } from '@ai-story/contracts';

/** The shots of a stage output or a run, when it has them. */
export function shotsOf(output: unknown): Shot[] | null {
  if (!output || typeof output !== 'object' || !Array.isArray((output as { shots?: unknown }).shots)) return null;
  const shots: Shot[] = [];
  for (const raw of (output as { shots: unknown[] }).shots) {
    const parsed = Shot.safeParse(raw);
    if (parsed.success) shots.push(parsed.data);
  }
  return shots;
}

/**
 * A storyboard as plain text, one block per shot: what the history shows, copies and compares (a
 * run's raw text is the model's JSON, which reads badly and diffs worse).
 */
export function shotsToText(shots: Shot[], labels: { shot: (n: number) => string; seconds: string; prompt: string }): string {
  return shots
    .map((s) =>
      [`${labels.shot(s.sequence_number)} · ${s.duration_seconds} ${labels.seconds}`, s.scene_description, s.narration_text, `${labels.prompt}: ${s.image_prompt}`]
        .filter((line) => line.trim() !== '')
        .join('\n'),
    )
    .join('\n\n');
}

export const totalSeconds = (shots: Pick<Shot, 'duration_seconds'>[]) => Math.round(shots.reduce((sum, s) => sum + s.duration_seconds, 0) * 10) / 10;
