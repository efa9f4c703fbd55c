import { CameraInput, MOVEMENT_TYPES, type Movement, type MovementType } from '@ai-story/contracts';
import { StageInputError, StageOutputError, type LlmStageDefinition, type ShotRow, type StageContext } from './definition.ts';
import { parseJsonOutput } from './json-output.ts';

export const CAMERA_TEMPLATE = `为下面每个分镜镜头设计一个运镜（camera movement）。

可选的 movement_type（只能用这些值）：static, zoom_in, zoom_out, pan_left, pan_right, tilt_up, tilt_down, dolly_in, dolly_out。
params：speed 为 "slow" | "medium" | "fast"；intensity 为 0 到 1 的数字；easing 为 "linear" | "ease_in" | "ease_out" | "ease_in_out"；description 用一句中文说明镜头如何运动、为何这样运动。

每个镜头恰好一个运镜，sequence_number 与镜头编号一致，不要遗漏也不要多出。
只输出一个 JSON 对象，不要 Markdown，不要解释：
{"movements":[{"sequence_number":1,"movement_type":"dolly_in","params":{"speed":"slow","intensity":0.4,"easing":"ease_in_out","description":"…"}}]}

镜头列表（JSON）：
{{ shots_json }}`;

/** Words models use for our movement types; only unambiguous ones are mapped ("pan" alone is not). */
const SYNONYMS: Record<string, MovementType> = {
  still: 'static', fixed: 'static', none: 'static', locked: 'static', 固定: 'static', 静止: 'static', 固定镜头: 'static',
  zoomin: 'zoom_in', push_zoom: 'zoom_in', 放大: 'zoom_in', 变焦推进: 'zoom_in',
  zoomout: 'zoom_out', 缩小: 'zoom_out', 变焦拉远: 'zoom_out',
  panleft: 'pan_left', 左摇: 'pan_left', 向左摇: 'pan_left', 左移: 'pan_left',
  panright: 'pan_right', 右摇: 'pan_right', 向右摇: 'pan_right', 右移: 'pan_right',
  tiltup: 'tilt_up', 上摇: 'tilt_up', 向上摇: 'tilt_up',
  tiltdown: 'tilt_down', 下摇: 'tilt_down', 向下摇: 'tilt_down',
  push_in: 'dolly_in', pushin: 'dolly_in', dollyin: 'dolly_in', 推: 'dolly_in', 推镜: 'dolly_in', 推进: 'dolly_in', 推镜头: 'dolly_in',
  pull_out: 'dolly_out', pullout: 'dolly_out', pull_back: 'dolly_out', dollyout: 'dolly_out', 拉: 'dolly_out', 拉远: 'dolly_out', 拉镜头: 'dolly_out',
};

export function movementTypeOf(raw: unknown): MovementType | null {
  if (typeof raw !== 'string') return null;
  const key = raw.trim().toLowerCase().replace(/[\s-]+/g, '_');
  if ((MOVEMENT_TYPES as readonly string[]).includes(key)) return key as MovementType;
  return SYNONYMS[key] ?? SYNONYMS[key.replaceAll('_', '')] ?? null;
}

const SPEEDS = new Set(['slow', 'medium', 'fast']);
const EASINGS = new Set(['linear', 'ease_in', 'ease_out', 'ease_in_out']);

function paramsOf(raw: unknown): Movement['params'] {
  const p = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const speed = typeof p.speed === 'string' && SPEEDS.has(p.speed.toLowerCase()) ? (p.speed.toLowerCase() as 'slow') : typeof p.speed === 'number' ? Math.min(1, Math.max(0, p.speed)) : 'medium';
  const intensity = Number(p.intensity);
  const easing = typeof p.easing === 'string' ? p.easing.toLowerCase().replace(/[\s-]+/g, '_') : '';
  return {
    speed,
    intensity: Number.isFinite(intensity) ? Math.min(1, Math.max(0, intensity)) : 0.5,
    easing: (EASINGS.has(easing) ? easing : 'ease_in_out') as Movement['params']['easing'],
    description: typeof p.description === 'string' ? p.description.slice(0, 1000) : '',
  };
}

const selectedShots = (input: CameraInput, ctx: StageContext): ShotRow[] =>
  input.shot_ids ? ctx.shots.filter((s) => input.shot_ids!.includes(s.id)) : ctx.shots;

function toMovement(raw: unknown, index: number, shots: ShotRow[], bySequence: boolean): Movement | null {
  if (!raw || typeof raw !== 'object') return null;
  const r = raw as Record<string, unknown>;
  const type = movementTypeOf(r.movement_type ?? r.type ?? r.movement);
  if (!type) return null;
  const seq = Number(r.sequence_number ?? r.shot ?? r.shot_number);
  const shot = bySequence && Number.isInteger(seq) ? shots.find((s) => s.sequenceNumber === seq) : shots[index];
  if (!shot) return null;
  return { shot_id: shot.id, sequence_number: shot.sequenceNumber, movement_type: type, params: paramsOf(r.params ?? r) };
}

export const cameraStage: LlmStageDefinition<CameraInput, { movements: Movement[] }> = {
  kind: 'llm',
  key: 'camera',
  input: CameraInput,
  defaultInput: () => ({}),
  systemPrompt: '你是一名电影摄影指导，为短视频设计运镜，只用 JSON 回答。',
  defaultTemplate: CAMERA_TEMPLATE,
  templateVariables: [
    { name: 'shots_json', type: 'string', description: '镜头列表 JSON / the shots as JSON', sample: '[{"sequence_number":1,"scene_description":"雨夜街角，一只橘猫发抖","narration_text":"那天夜里，雨下得很大。"}]' },
    { name: 'shot_count', type: 'number', description: '镜头数 / number of shots', sample: 1 },
  ],
  validate(input, ctx) {
    if (ctx.shots.length === 0) throw new StageInputError('input', 'Generate the storyboard first: camera movements follow its shots');
    const unknown = input.shot_ids?.filter((id) => !ctx.shots.some((s) => s.id === id)) ?? [];
    if (unknown.length) throw new StageInputError('input.shot_ids', `Not a shot of this project: ${unknown.join(', ')}`);
  },
  variables: (input, ctx) => {
    const shots = selectedShots(input, ctx);
    return {
      shots_json: JSON.stringify(
        shots.map((s) => ({ sequence_number: s.sequenceNumber, scene_description: s.sceneDescription, narration_text: s.narrationText, duration_seconds: s.durationSeconds })),
        null,
        1,
      ),
      shot_count: shots.length,
    };
  },
  responseFormat: 'json_object',
  expectedTokens: (input) => 70 * (input.shot_ids?.length ?? 8),
  items: {
    key: 'movements',
    event: 'movement',
    normalize: (raw, index, input, ctx) => toMovement(raw, index, selectedShots(input, ctx), true),
  },
  parseOutput(text, input, ctx) {
    const shots = selectedShots(input, ctx);
    const value = parseJsonOutput(text) as { movements?: unknown };
    const list = Array.isArray(value) ? value : value?.movements;
    if (!Array.isArray(list)) throw new StageOutputError('The model\'s JSON has no "movements" list');
    // Match by sequence number; when the model numbered nothing and gave one per shot, by position.
    const numbered = list.some((r) => r && typeof r === 'object' && 'sequence_number' in r);
    const found = new Map<string, Movement>();
    const unknownTypes: string[] = [];
    list.forEach((raw, i) => {
      const m = toMovement(raw, i, shots, numbered);
      if (m) {
        if (!found.has(m.shot_id!)) found.set(m.shot_id!, m);
      } else if (raw && typeof raw === 'object' && !movementTypeOf((raw as Record<string, unknown>).movement_type)) {
        unknownTypes.push(String((raw as Record<string, unknown>).movement_type));
      }
    });
    const missing = shots.filter((s) => !found.has(s.id)).map((s) => s.sequenceNumber);
    if (missing.length) {
      const why = unknownTypes.length ? ` (unknown movement types: ${unknownTypes.join(', ')})` : '';
      throw new StageOutputError(`The model gave no usable movement for shot ${missing.join(', ')}${why}`);
    }
    // Extra entries for shots we did not ask about are dropped: every requested shot has its movement.
    return { movements: shots.map((s) => found.get(s.id)!) };
  },
  async persist(store, projectId, output) {
    await store.storyboards.upsertMovements(projectId, output.movements);
    return { movements: await store.storyboards.movementsOf(projectId) };
  },
};
