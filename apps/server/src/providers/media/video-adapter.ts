import type { MediaErrorCode } from './errors.ts';
import { klingVideoAdapter } from './video-kling.ts';
import { seedanceVideoAdapter } from './video-seedance.ts';

export type VideoApiFormat = 'kling' | 'seedance';

export interface VideoProvider {
  api_url: string;
  /** Kling: the AccessKey; Seedance: the Ark API key. */
  api_key: string;
  /** Kling: the SecretKey that signs the JWT. */
  api_secret?: string;
  model_name: string;
  /** The whole generation (create, queue, render, poll) must finish within this. */
  timeout_s: number;
}

export type AspectRatio = '9:16' | '16:9' | '1:1' | '4:3' | '3:4';

export type MovementType = 'static' | 'zoom_in' | 'zoom_out' | 'pan_left' | 'pan_right' | 'tilt_up' | 'tilt_down' | 'dolly_in' | 'dolly_out';

export interface VideoRequest {
  /** A URL the vendor can fetch, or… */
  image_url?: string;
  /** …the image itself, base64 (with or without a `data:` prefix). */
  image_b64?: string;
  prompt: string;
  /** The shot's length; the vendor clip is the smallest it offers at or above it (then fitted locally). */
  duration_s: number;
  aspect_ratio: AspectRatio;
  movement: { movement_type: MovementType; params: { intensity: number } };
}

export interface VideoStatus {
  status: 'queued' | 'running';
  percent?: number;
}

export interface VideoOptions {
  signal: AbortSignal;
  pollIntervalMs?: number;
  onStatus?: (s: VideoStatus) => void;
}

export interface VideoResult {
  /** The vendor's URL; it expires, so fetch it at once. */
  url: string;
  vendor_duration_s: number;
  /** Billable seconds of video. */
  usage: { seconds: number };
}

export interface VideoConnectionResult {
  ok: boolean;
  latency_ms: number;
  /** Set when not ok. */
  code?: MediaErrorCode;
  message: string;
}

export interface VideoAdapter {
  generate(provider: VideoProvider, req: VideoRequest, opts: VideoOptions): Promise<VideoResult>;
  /** Checks the credentials without starting a billable task. */
  testConnection(provider: VideoProvider): Promise<VideoConnectionResult>;
}

export function videoAdapterFor(api_format: VideoApiFormat): VideoAdapter {
  switch (api_format) {
    case 'kling':
      return klingVideoAdapter;
    case 'seedance':
      return seedanceVideoAdapter;
    default: {
      const unknown: never = api_format;
      throw new Error(`No image-to-video adapter for api_format ${String(unknown)}`);
    }
  }
}

/** Both vendors offer 5 s and 10 s clips: the smallest that covers the shot, at most 10 s (the rest is held locally). */
export function vendorDurationFor(shot_s: number): 5 | 10 {
  return shot_s <= 5 ? 5 : 10;
}

const MOVEMENT_WORDS: Record<MovementType, string> = {
  static: 'static camera, the camera does not move',
  zoom_in: 'the camera slowly zooms in',
  zoom_out: 'the camera slowly zooms out',
  pan_left: 'the camera pans to the left',
  pan_right: 'the camera pans to the right',
  tilt_up: 'the camera tilts up',
  tilt_down: 'the camera tilts down',
  dolly_in: 'the camera dollies in, moving forward towards the subject',
  dolly_out: 'the camera dollies out, moving backward away from the subject',
};

/** The movement in words, for vendors (or models) that take no camera parameters. */
export function movementInWords(movement: VideoRequest['movement']): string {
  const intensity = movement.params.intensity;
  const strength = movement.movement_type === 'static' ? '' : intensity < 0.34 ? ', gently' : intensity < 0.67 ? '' : ', strongly';
  return `Camera: ${MOVEMENT_WORDS[movement.movement_type]}${strength}.`;
}
