import { describe, expect, test } from 'vitest';
import { shotLengthFor } from './narration.ts';

describe('shotLengthFor', () => {
  const range = { minShotS: 2, maxShotS: 8 };

  test('speech plus its pause, inside the project range', () => {
    expect(shotLengthFor(3.2, 0.5, range)).toBe(3.7);
    expect(shotLengthFor(0.8, 0.5, range)).toBe(2);
    expect(shotLengthFor(7.8, 0.5, range)).toBe(8);
  });

  test('never shorter than the speech: a narration longer than the range keeps every word', () => {
    expect(shotLengthFor(17.391, 0.5, range)).toBe(17.391);
  });
});
