import { describe, expect, it } from 'vitest';
import { cleanDeep, cleanDelta, cleanText } from './well-formed.ts';

describe('well-formed run text', () => {
  it('drops U+FFFD and lone surrogates but keeps whole emoji', () => {
    expect(cleanText('相机\uFFFD')).toBe('相机');
    expect(cleanText('相机\ud83d')).toBe('相机');
    expect(cleanText('\ude00尾')).toBe('尾');
    expect(cleanText('相机📷👨‍👩‍👧')).toBe('相机📷👨‍👩‍👧');
  });

  it('holds back a high surrogate at the end of a delta until its pair arrives', () => {
    const camera = '📷';
    const first = cleanDelta('', '相机' + camera[0]);
    expect(first).toEqual({ text: '相机', carry: camera[0] });
    const second = cleanDelta(first.carry, camera[1] + '。');
    expect(first.text + second.text).toBe('相机📷。');
    expect(second.carry).toBe('');
    // A pair that never comes is dropped, not kept broken.
    expect(cleanDelta(cleanDelta('', 'a\ud83d').carry, 'b').text).toBe('b');
  });

  it('cleans every string of a parsed output', () => {
    expect(cleanDeep({ shots: [{ scene_description: '相机\ud83d', duration_seconds: 3 }] })).toEqual({ shots: [{ scene_description: '相机', duration_seconds: 3 }] });
  });
});
