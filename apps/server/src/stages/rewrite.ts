import { RewriteInput, type RewriteOutput } from '@ai-story/contracts';
import { StageInputError, StageOutputError, type LlmStageDefinition } from './definition.ts';

const STYLE_LABELS: Record<RewriteInput['style'], string> = {
  narrative: '叙事：娓娓道来，有起承转合',
  science: '科普：准确清晰，深入浅出',
  emotional: '情感：细腻动人，引发共鸣',
  suspense: '悬疑：层层设疑，节奏紧张',
  custom: '按下方的额外要求',
};

export const REWRITE_TEMPLATE = `请把下面的原始文案改写成一段适合短视频旁白的故事文案。

风格：{{ style_label }}
{% if target_length %}目标长度：约 {{ target_length }} 字
{% endif %}{% if instructions %}额外要求：{{ instructions }}
{% endif %}
要求：
1. 开头三句话内抓住观众；
2. 句子短，口语化，适合朗读；
3. 保留原文的核心信息，不编造事实；
4. 只输出改写后的文案，不要标题、解释或 Markdown。

原始文案：
{{ original_text }}`;

export const rewriteStage: LlmStageDefinition<RewriteInput, RewriteOutput> = {
  kind: 'llm',
  key: 'rewrite',
  input: RewriteInput,
  defaultInput: ({ project }) => ({ original_text: project.originalTopic }),
  systemPrompt: '你是一名资深短视频编剧，擅长把素材改写成引人入胜的中文故事旁白。',
  defaultTemplate: REWRITE_TEMPLATE,
  templateVariables: [
    { name: 'original_text', type: 'string', description: '原始文案 / the text to rewrite', sample: '一只猫在雨夜里寻找回家的路。' },
    { name: 'style', type: 'string', description: 'narrative | science | emotional | suspense | custom', sample: 'narrative' },
    { name: 'style_label', type: 'string', description: '风格说明 / the style in words', sample: STYLE_LABELS.narrative },
    { name: 'instructions', type: 'string', description: '额外要求 / extra instructions', sample: '' },
    { name: 'target_length', type: 'number', description: '目标字数 / target length in characters', sample: 300 },
  ],
  variables: (input) => ({
    original_text: input.original_text,
    style: input.style,
    style_label: STYLE_LABELS[input.style],
    instructions: input.instructions ?? '',
    target_length: input.target_length ?? null,
  }),
  expectedTokens: (input) => Math.min(4000, Math.max(200, input.target_length ?? Math.round(input.original_text.length * 1.5))),
  parseOutput(text, input) {
    const rewritten = text.trim();
    if (!rewritten) throw new StageOutputError('The model returned an empty text');
    return { original_text: input.original_text, rewritten_text: rewritten };
  },
  persist: async (_store, _projectId, output) => output,
  editOutput(edit, current) {
    const text = edit.rewritten_text;
    if (typeof text !== 'string' || !text.trim()) throw new StageInputError('output.rewritten_text', 'Required');
    if (text.length > 100_000) throw new StageInputError('output.rewritten_text', 'At most 100000 characters');
    const original = current?.original_text ?? (typeof edit.original_text === 'string' ? edit.original_text : '');
    return { output: { original_text: original, rewritten_text: text }, text };
  },
};
