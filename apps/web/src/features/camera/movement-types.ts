import { Aim, Back, Bottom, FullScreen, Right, Top, VideoCamera, ZoomIn, ZoomOut } from '@element-plus/icons-vue';
import { MOVEMENT_TYPES, Movement, type MovementType } from '@ai-story/contracts';
import type { Component } from 'vue';

export { MOVEMENT_TYPES };
export const SPEEDS = ['slow', 'medium', 'fast'] as const;
export const EASINGS = ['linear', 'ease_in', 'ease_out', 'ease_in_out'] as const;
export type Speed = (typeof SPEEDS)[number];

export const MOVEMENT_ICONS: Record<MovementType, Component> = {
  static: VideoCamera,
  zoom_in: ZoomIn,
  zoom_out: ZoomOut,
  pan_left: Back,
  pan_right: Right,
  tilt_up: Top,
  tilt_down: Bottom,
  dolly_in: Aim,
  dolly_out: FullScreen,
};

/** The contract allows a speed as a number 0..1 too (some models answer so): show it as the nearest word. */
export function speedWord(speed: Movement['params']['speed']): Speed {
  if (typeof speed === 'string') return speed;
  return speed < 0.34 ? 'slow' : speed < 0.67 ? 'medium' : 'fast';
}

/** A movement of the stage's output or a run, checked against the contract. */
export function movementsOf(output: unknown): Movement[] | null {
  if (!output || typeof output !== 'object' || !Array.isArray((output as { movements?: unknown }).movements)) return null;
  const list: Movement[] = [];
  for (const raw of (output as { movements: unknown[] }).movements) {
    const parsed = Movement.safeParse(raw);
    if (parsed.success) list.push(parsed.data);
  }
  return list;
}
