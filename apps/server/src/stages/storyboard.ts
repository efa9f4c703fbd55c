import { Shot, StoryboardInput, type RewriteOutput } from '@ai-story/contracts';
import { z } from 'zod';
import type { storyboardShots } from '../db/schema.ts';
import { StageOutputError, type LlmStageDefinition } from './definition.ts';
import { parseJsonOutput } from './json-output.ts';

export const STORYBOARD_TEMPLATE = `请把下面的故事文案拆成短视频分镜脚本。

要求：
1. {% if shot_count %}恰好 {{ shot_count }} 个镜头{% else %}按情节自然划分，通常 4–12 个镜头{% endif %}，每个镜头 {{ min_duration }}–{{ max_duration }} 秒；
2. scene_description：画面内容（景别、主体、动作、环境），中文；
3. narration_text：该镜头对应的旁白，取自原文，可略作精简，全部镜头连起来覆盖整段文案；
4. image_prompt：给文生图模型的英文提示词，画幅 {{ aspect_ratio }}，视觉风格：{{ visual_style }}；
5. duration_seconds：数字，单位秒。

只输出一个 JSON 对象，不要 Markdown，不要解释，格式如下：
{"shots":[{"sequence_number":1,"scene_description":"…","narration_text":"…","image_prompt":"…","duration_seconds":4}]}

故事文案：
{{ text }}`;

/** Field names models use instead of ours, mapped where the meaning is unambiguous. */
const RawShot = z
  .object({
    sequence_number: z.coerce.number().int().optional(),
    scene_description: z.string().optional(),
    scene: z.string().optional(),
    narration_text: z.string().optional(),
    narration: z.string().optional(),
    image_prompt: z.string().optional(),
    prompt: z.string().optional(),
    duration_seconds: z.coerce.number().optional(),
    duration: z.coerce.number().optional(),
    /** Who speaks the line when the narration is dialogue (a character's name). */
    speaker: z.string().nullish(),
  })
  .passthrough();

function toShot(raw: unknown, index: number, input: StoryboardInput): Shot | null {
  const r = RawShot.safeParse(raw);
  if (!r.success) return null;
  const v = r.data;
  const scene = v.scene_description ?? v.scene ?? '';
  const narration = v.narration_text ?? v.narration ?? '';
  if (!scene.trim() && !narration.trim()) return null;
  const duration = v.duration_seconds ?? v.duration ?? (input.min_duration + input.max_duration) / 2;
  return {
    sequence_number: index + 1,
    scene_description: scene.trim(),
    narration_text: narration.trim(),
    image_prompt: (v.image_prompt ?? v.prompt ?? '').trim(),
    duration_seconds: Math.min(120, Math.max(0.5, Number.isFinite(duration) ? duration : 3)),
    ...(v.speaker?.trim() && { speaker: v.speaker.trim().slice(0, 100) }),
  };
}

export const storyboardStage: LlmStageDefinition<StoryboardInput, { shots: Shot[] }> = {
  kind: 'llm',
  key: 'storyboard',
  input: StoryboardInput,
  defaultInput: ({ project, stages }) => {
    const rewrite = stages.find((s) => s.stageType === 'rewrite')?.output as RewriteOutput | null | undefined;
    return { text: rewrite?.rewritten_text || project.originalTopic };
  },
  systemPrompt: '你是一名经验丰富的短视频分镜师，只用 JSON 回答。',
  defaultTemplate: STORYBOARD_TEMPLATE,
  templateVariables: [
    { name: 'text', type: 'string', description: '要拆分的故事文案 / the story text', sample: '雨夜，一只橘猫在街角发抖。小女孩撑伞走来，把它抱回了家。' },
    { name: 'shot_count', type: 'number', description: '镜头数（可空）/ number of shots (optional)', sample: 4 },
    { name: 'min_duration', type: 'number', description: '每镜最短秒数 / shortest shot, s', sample: 2 },
    { name: 'max_duration', type: 'number', description: '每镜最长秒数 / longest shot, s', sample: 8 },
    { name: 'aspect_ratio', type: 'string', description: '画幅 / aspect ratio', sample: '9:16' },
    { name: 'visual_style', type: 'string', description: '视觉风格 / visual style for image prompts', sample: '电影感，写实' },
  ],
  variables: (input) => ({ ...input, shot_count: input.shot_count ?? null }),
  responseFormat: 'json_object',
  expectedTokens: (input) => Math.min(6000, 120 * (input.shot_count ?? 8)),
  items: { key: 'shots', event: 'shot', normalize: (raw, index, input) => toShot(raw, index, input) },
  parseOutput(text, input) {
    const value = parseJsonOutput(text) as { shots?: unknown };
    const list = Array.isArray(value) ? value : value?.shots;
    if (!Array.isArray(list)) throw new StageOutputError('The model\'s JSON has no "shots" list');
    const shots = list.map((raw, i) => toShot(raw, i, input));
    const bad = shots.findIndex((s) => s === null);
    if (bad >= 0) throw new StageOutputError(`Shot ${bad + 1} has neither a scene description nor narration`);
    if (shots.length === 0) throw new StageOutputError('The model returned no shots');
    return { shots: shots as Shot[] };
  },
  // The new storyboard goes over the old one in place: shots that still exist keep their ids.
  persist: async (store, projectId, output) => ({ shots: (await store.storyboards.replaceShots(projectId, output.shots)).map(shotOf) }),
};

export const shotOf = (r: typeof storyboardShots.$inferSelect): Shot => ({
  id: r.id,
  sequence_number: r.sequenceNumber,
  scene_description: r.sceneDescription,
  narration_text: r.narrationText,
  image_prompt: r.imagePrompt,
  duration_seconds: r.durationSeconds,
  speaker: r.speaker,
  duration_locked: r.durationLocked,
  media_settings: r.mediaSettings ?? {},
});
