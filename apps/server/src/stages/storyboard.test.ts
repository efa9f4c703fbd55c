import { StoryboardInput, type Shot } from '@ai-story/contracts';
import { describe, expect, it } from 'vitest';
import { fitShots, STORYBOARD_TEMPLATE, storyboardStage } from './storyboard.ts';

const shot = (i: number, duration: number): Shot => ({ sequence_number: i, scene_description: `场景${i}`, narration_text: `旁白${i}。`, image_prompt: `prompt ${i}`, duration_seconds: duration });

describe('fitShots', () => {
  it('keeps the count asked for by merging the surplus into neighbours, and says so', () => {
    const { shots, notes } = fitShots([1, 2, 3, 4, 5, 6, 7, 8].map((i) => shot(i, 2)), { count: 4, min: 2, max: 8 });
    expect(shots).toHaveLength(4);
    expect(shots.map((s) => s.sequence_number)).toEqual([1, 2, 3, 4]);
    expect(shots.map((s) => s.narration_text).join('')).toBe('旁白1。旁白2。旁白3。旁白4。旁白5。旁白6。旁白7。旁白8。');
    expect(shots[0].duration_seconds).toBe(4);
    expect(notes.map((n) => n.code)).toEqual(['shots_merged']);
    expect(notes[0].params).toEqual({ asked: 4, received: 8 });
  });

  it('clamps every length into the range and names the shots it changed', () => {
    const { shots, notes } = fitShots([shot(1, 10), shot(2, 5), shot(3, 1)], { min: 2, max: 8 });
    expect(shots.map((s) => s.duration_seconds)).toEqual([8, 5, 2]);
    expect(notes).toEqual([expect.objectContaining({ code: 'shot_lengths_adjusted', params: { shots: '1, 3', min: 2, max: 8 } })]);
  });

  it('merging may make a shot too long: the range still holds', () => {
    const { shots, notes } = fitShots([shot(1, 6), shot(2, 6)], { count: 1, min: 2, max: 8 });
    expect(shots[0].duration_seconds).toBe(8);
    expect(notes.map((n) => n.code)).toEqual(['shots_merged', 'shot_lengths_adjusted']);
  });

  it('reports a shortfall without inventing shots, and says nothing when all fits', () => {
    expect(fitShots([shot(1, 3)], { count: 3, min: 2, max: 8 }).notes.map((n) => n.code)).toEqual(['shots_fewer']);
    expect(fitShots([shot(1, 3), shot(2, 4)], { count: 2, min: 2, max: 8 }).notes).toEqual([]);
  });
});

describe('the storyboard\'s speaker per shot', () => {
  it('the default template asks for a speaker: a character\'s name for dialogue, else the narrator', () => {
    expect(STORYBOARD_TEMPLATE).toMatch(/speaker：.*对白.*名字.*"旁白"/);
    expect(STORYBOARD_TEMPLATE).toContain('"speaker":"旁白"');
  });

  it('keeps a character\'s name as the speaker, and leaves the narrator\'s lines without one', () => {
    const answer = JSON.stringify({
      shots: [
        { scene_description: '街角', narration_text: '老人问：“谁的？”', duration_seconds: 3, speaker: ' 老人 ' },
        { scene_description: '海边', narration_text: '天黑了。', duration_seconds: 3, speaker: '旁白' },
        { scene_description: '灯塔', narration_text: '灯亮了。', duration_seconds: 3, speaker: 'Narrator' },
        { scene_description: '清晨', narration_text: '钟又走了。', duration_seconds: 3 },
      ],
    });
    // No project context: the input's own shot-length range applies.
    const { shots } = storyboardStage.parseOutput(answer, StoryboardInput.parse({ text: '故事' }), undefined as never);
    expect(shots.map((s) => s.speaker ?? null)).toEqual(['老人', null, null, null]);
  });
});
