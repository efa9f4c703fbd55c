import { Shot, StoryboardInput, type RewriteOutput } from '@ai-story/contracts';
import { z } from 'zod';
import type { storyboardShots } from '../db/schema.ts';
import { StageOutputError, type LlmStageDefinition, type StageContext, type StageNote } from './definition.ts';
import { parseJsonOutput } from './json-output.ts';

export const STORYBOARD_TEMPLATE = `请把下面的故事文案拆成短视频分镜脚本。

要求：
1. {% if shot_count %}恰好 {{ shot_count }} 个镜头{% else %}按情节自然划分，通常 4–12 个镜头{% endif %}，每个镜头 {{ min_duration }}–{{ max_duration }} 秒；
2. scene_description：画面内容（景别、主体、动作、环境），中文；
3. narration_text：该镜头对应的旁白，取自原文，可略作精简，全部镜头连起来覆盖整段文案；
4. image_prompt：给文生图模型的英文提示词，画幅 {{ aspect_ratio }}，视觉风格：{{ visual_style }}；
5. duration_seconds：数字，单位秒；
6. speaker：这段旁白由谁说出——是角色的对白时填说话角色的名字（全篇同一角色用同一个名字），否则填 "旁白"。

只输出一个 JSON 对象，不要 Markdown，不要解释，格式如下：
{"shots":[{"sequence_number":1,"scene_description":"…","narration_text":"…","image_prompt":"…","duration_seconds":4,"speaker":"旁白"}]}

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

/** The template asks for "旁白" on lines nobody in the story says; the narrator is no speaker (the project's own voice reads it). */
const NARRATOR = /^(旁白|画外音|叙述者|narrator|narration|voice-?over|none|null)$/i;
function speakerOf(raw: string | null | undefined): string | null {
  const name = raw?.trim().slice(0, 100);
  return name && !NARRATOR.test(name) ? name : null;
}

/** The project's shot-length range is the one source of truth (DESIGN §9), whatever a run's input says. */
const rangeOf = (input: StoryboardInput, ctx?: StageContext) => ({ min: ctx?.project.minShotS ?? input.min_duration, max: ctx?.project.maxShotS ?? input.max_duration });

function toShot(raw: unknown, index: number, input: StoryboardInput, ctx?: StageContext): Shot | null {
  const r = RawShot.safeParse(raw);
  if (!r.success) return null;
  const v = r.data;
  const scene = v.scene_description ?? v.scene ?? '';
  const narration = v.narration_text ?? v.narration ?? '';
  if (!scene.trim() && !narration.trim()) return null;
  const { min, max } = rangeOf(input, ctx);
  const duration = v.duration_seconds ?? v.duration ?? (min + max) / 2;
  const speaker = speakerOf(v.speaker);
  return {
    sequence_number: index + 1,
    scene_description: scene.trim(),
    narration_text: narration.trim(),
    image_prompt: (v.image_prompt ?? v.prompt ?? '').trim(),
    duration_seconds: Math.min(120, Math.max(0.5, Number.isFinite(duration) ? duration : 3)),
    ...(speaker && { speaker }),
  };
}

export const storyboardStage: LlmStageDefinition<StoryboardInput, { shots: Shot[] }> = {
  kind: 'llm',
  key: 'storyboard',
  input: StoryboardInput,
  reads: ['rewrite'],
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
  variables: (input, ctx) => {
    const { min, max } = rangeOf(input, ctx);
    return { ...input, min_duration: min, max_duration: max, shot_count: input.shot_count ?? null };
  },
  responseFormat: 'json_object',
  expectedTokens: (input) => Math.min(6000, 120 * (input.shot_count ?? 8)),
  items: { key: 'shots', event: 'shot', normalize: (raw, index, input, ctx) => toShot(raw, index, input, ctx) },
  parseOutput(text, input, ctx, note) {
    const value = parseJsonOutput(text) as { shots?: unknown };
    const list = Array.isArray(value) ? value : value?.shots;
    if (!Array.isArray(list)) throw new StageOutputError('The model\'s JSON has no "shots" list');
    const shots = list.map((raw, i) => toShot(raw, i, input, ctx));
    const bad = shots.findIndex((s) => s === null);
    if (bad >= 0) throw new StageOutputError(`Shot ${bad + 1} has neither a scene description nor narration`);
    if (shots.length === 0) throw new StageOutputError('The model returned no shots');
    const fitted = fitShots(shots as Shot[], { count: input.shot_count, ...rangeOf(input, ctx) });
    for (const n of fitted.notes) note?.(n);
    return { shots: fitted.shots };
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

/**
 * What a model answered, made to fit what was asked: exactly `count` shots when a count was asked (a
 * surplus is merged into its neighbours, evenly; a shortfall is only reported — inventing story is not
 * ours to do), every length within [min, max]. Each change is reported as a note.
 */
export function fitShots(shots: Shot[], ask: { count?: number; min: number; max: number }): { shots: Shot[]; notes: StageNote[] } {
  const notes: StageNote[] = [];
  let list = shots;
  if (ask.count !== undefined && list.length > ask.count) {
    const n = ask.count;
    const from = list.length;
    list = Array.from({ length: n }, (_, g) => mergeShots(list.slice(Math.floor((g * from) / n), Math.floor(((g + 1) * from) / n))));
    notes.push({ code: 'shots_merged', params: { asked: n, received: from }, message: `The model made ${from} shots for the ${n} asked; neighbouring shots were merged to keep ${n}.` });
  } else if (ask.count !== undefined && list.length < ask.count) {
    notes.push({ code: 'shots_fewer', params: { asked: ask.count, received: list.length }, message: `The model made only ${list.length} of the ${ask.count} shots asked.` });
  }
  const adjusted: number[] = [];
  list = list.map((shot, i) => {
    const duration = Math.min(ask.max, Math.max(ask.min, shot.duration_seconds));
    if (duration !== shot.duration_seconds) adjusted.push(i + 1);
    return { ...shot, sequence_number: i + 1, duration_seconds: duration };
  });
  if (adjusted.length) {
    const shotsList = adjusted.join(', ');
    notes.push({ code: 'shot_lengths_adjusted', params: { shots: shotsList, min: ask.min, max: ask.max }, message: `Shot lengths outside ${ask.min}–${ask.max} s were adjusted (shots ${shotsList}).` });
  }
  return { shots: list, notes };
}

function mergeShots(group: Shot[]): Shot {
  if (group.length === 1) return group[0];
  const join = (k: 'scene_description' | 'narration_text', sep: string) => group.map((s) => s[k]).filter(Boolean).join(sep);
  return {
    ...group[0],
    scene_description: join('scene_description', '；'),
    narration_text: join('narration_text', ''),
    image_prompt: group[0].image_prompt,
    duration_seconds: group.reduce((sum, s) => sum + s.duration_seconds, 0),
  };
}
