/**
 * The text-to-image adapters the studio uses (DESIGN §9): one interface, one implementation per vendor
 * shape, chosen by the provider's `api_format` — never guessed from its URL.
 */
import { dashscopeImageAdapter } from './image-dashscope.ts';
import { openaiImageAdapter } from './image-openai.ts';
import { siliconflowImageAdapter } from './image-siliconflow.ts';
import type { ImageApiFormat } from './image-sizes.ts';
import type { ConnectionCheck } from './media-connection-check.ts';

export type { ImageApiFormat } from './image-sizes.ts';

export interface ImageProviderConfig {
  api_url: string;
  api_key: string;
  model_name: string;
  /** Bounds each HTTP request; a task-based vendor's whole task may take longer (see its adapter). */
  timeout_s: number;
}

export interface ImageRequest {
  prompt: string;
  /** The size wanted; the adapter asks for the nearest size the vendor accepts (image-sizes.ts). */
  width: number;
  height: number;
  n: number;
  /**
   * A reference picture (a character's chosen one), as a URL or a `data:image/…;base64,` URI. Sent
   * only to adapters whose `acceptsReferenceImage` is true.
   */
  reference_image_url?: string;
}

export interface ImageGenerateOptions {
  signal: AbortSignal;
  onStatus?: (status: { status: 'queued' | 'running'; percent?: number }) => void;
}

/** A URL (fetch it at once: vendors' URLs expire) or the image itself, base64. */
export type GeneratedImage = { url: string } | { b64: string };

export interface ImageResult {
  images: GeneratedImage[];
  usage: { images: number };
}

export type { ConnectionCheck } from './media-connection-check.ts';

export interface ImageAdapter {
  readonly api_format: ImageApiFormat;
  /** Whether the vendor shape takes a reference picture with the prompt (the stage sends one only then). */
  readonly acceptsReferenceImage: boolean;
  /** Throws MediaProviderError. */
  generate(provider: ImageProviderConfig, req: ImageRequest, opts: ImageGenerateOptions): Promise<ImageResult>;
  /** Checks the key without starting a billable job. */
  testConnection(provider: ImageProviderConfig): Promise<ConnectionCheck>;
}

const ADAPTERS: Record<ImageApiFormat, ImageAdapter> = {
  openai: openaiImageAdapter,
  siliconflow: siliconflowImageAdapter,
  dashscope: dashscopeImageAdapter,
};

export function imageAdapterFor(api_format: string): ImageAdapter {
  const adapter = (ADAPTERS as Record<string, ImageAdapter | undefined>)[api_format];
  if (!adapter) throw new Error(`Unknown image api_format "${api_format}" (expected ${Object.keys(ADAPTERS).join(', ')})`);
  return adapter;
}
