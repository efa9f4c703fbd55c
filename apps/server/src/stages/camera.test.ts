import { describe, expect, it } from 'vitest';
import { cameraStage, movementTypeOf } from './camera.ts';
import { StageOutputError, type ShotRow, type StageContext } from './definition.ts';

const shot = (n: number): ShotRow => ({
  id: `00000000-0000-4000-8000-00000000000${n}`,
  projectId: 'p',
  sequenceNumber: n,
  sceneDescription: `scene ${n}`,
  narrationText: `narration ${n}`,
  imagePrompt: '',
  durationSeconds: 3,
  speaker: null,
  durationLocked: false,
  createdAt: new Date(),
});
const ctx = { shots: [shot(1), shot(2), shot(3)] } as unknown as StageContext;
const parse = (movements: unknown[], input = {}) => cameraStage.parseOutput(JSON.stringify({ movements }), input, ctx);
const m = (seq: number | undefined, type: string) => ({ ...(seq !== undefined && { sequence_number: seq }), movement_type: type, params: { speed: 'slow', intensity: 0.5, easing: 'ease-in-out', description: 'd' } });

describe('camera output', () => {
  it('maps synonyms that are unambiguous and refuses those that are not', () => {
    expect(movementTypeOf('Zoom In')).toBe('zoom_in');
    expect(movementTypeOf('push-in')).toBe('dolly_in');
    expect(movementTypeOf('推镜头')).toBe('dolly_in');
    expect(movementTypeOf('固定')).toBe('static');
    expect(movementTypeOf('pan')).toBeNull();
    expect(movementTypeOf('摇')).toBeNull();
  });

  it('gives exactly one movement per shot, matched by sequence number, extras dropped', () => {
    const out = parse([m(3, 'tilt_up'), m(1, 'zoom in'), m(2, 'static'), m(9, 'pan_left'), m(1, 'zoom_out')]);
    expect(out.movements.map((x) => [x.sequence_number, x.movement_type])).toEqual([
      [1, 'zoom_in'],
      [2, 'static'],
      [3, 'tilt_up'],
    ]);
    expect(out.movements[0].params.easing).toBe('ease_in_out');
  });

  it('matches by position when the model numbered nothing', () => {
    const out = parse([m(undefined, 'pan_left'), m(undefined, 'pan_right'), m(undefined, 'dolly_out')]);
    expect(out.movements.map((x) => x.shot_id)).toEqual(ctx.shots.map((s) => s.id));
  });

  it('fails with the reason when a shot is missing or its type is unknown', () => {
    expect(() => parse([m(1, 'static'), m(2, 'static')])).toThrow(/shot 3/);
    expect(() => parse([m(1, 'static'), m(2, 'static'), m(3, 'spin_around')])).toThrow(StageOutputError);
    expect(() => parse([m(1, 'static'), m(2, 'static'), m(3, 'spin_around')])).toThrow(/spin_around/);
  });

  it('covers only the shots asked for', () => {
    const out = parse([m(1, 'static'), m(2, 'zoom_in'), m(3, 'static')], { shot_ids: [shot(2).id] });
    expect(out.movements.map((x) => x.sequence_number)).toEqual([2]);
  });
});
