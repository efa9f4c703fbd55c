import { describe, expect, it } from 'vitest';
import { expectedText } from './answer.ts';
import { buildStoryboard } from './json-output.ts';
import { peopleIn, speakerOf } from './people.ts';
import { splitSentences } from './text.ts';

const STORY = '雨夜，老人在街角的小店里修钟表。门开了，小女孩抱着一只旧钟走进来。老人抬起头问：“这钟是谁的？”小女孩说：“是我外婆的。”第二天清晨，钟又走了。';

describe('who the simulated model finds in a story', () => {
  it('names the people of a Chinese story once each, the longer word over the word inside it', () => {
    expect(peopleIn(STORY)).toEqual(['老人', '小女孩', '外婆']);
    expect(peopleIn('小林说：“走吧。”阿明点点头。')).toEqual(['小林']);
    expect(peopleIn('雨一直下，街上空无一人。')).toEqual([]);
  });

  it('gives the speaker of a quoted line: named before the quote, else right after it; nobody without a quote', () => {
    expect(speakerOf('老人抬起头问：“这钟是谁的？”')).toBe('老人');
    expect(speakerOf('“走吧。”小女孩轻声说。')).toBe('小女孩');
    expect(speakerOf('小林说：“走吧。”')).toBe('小林');
    expect(speakerOf('老人在街角修钟表。')).toBeNull();
  });

  it('ends a sentence after a closing quote and at full-width ！？；', () => {
    expect(splitSentences('老人问：“谁的？”小女孩说：“我的！”好。')).toEqual(['老人问：“谁的？”', '小女孩说：“我的！”', '好。']);
  });

  it('answers a character request with name + look pairs, the same for the same story', () => {
    const request = {
      model: 'ai-story-demo',
      response_format: { type: 'json_object' },
      messages: [
        { role: 'system', content: '列出故事里出场的角色。只输出 JSON：{"characters":[{"name":"老人","look":"白发、深蓝毛衣"}]}' },
        { role: 'user', content: STORY },
      ],
    };
    const answer = JSON.parse(expectedText(request)) as { characters: { name: string; look: string }[] };
    expect(answer.characters.map((c) => c.name)).toEqual(['老人', '小女孩', '外婆']);
    for (const c of answer.characters) expect(c.look).toMatch(/、/);
    expect(expectedText(request)).toBe(expectedText(request));
  });

  it('a storyboard shot that quotes someone carries its speaker; the narrator\'s shots carry none', () => {
    const { shots } = buildStoryboard([{ role: 'user', content: `请拆成恰好 5 个镜头的分镜。\n故事文案：\n${STORY}` }], 3);
    expect(shots.map((s) => s.speaker ?? null)).toEqual([null, null, '老人', '小女孩', null]);
  });
});
