/**
 * A project's aspect ratio and resolution → the size each vendor accepts. Vendors take either a fixed
 * list (pick the nearest: aspect first, then pixel count) or any size within bounds (scale into them).
 * Lists as documented (checked 2025):
 * - OpenAI images/create: dall-e-2 256/512/1024 squares; dall-e-3 1024x1024, 1792x1024, 1024x1792;
 *   gpt-image-1 1024x1024, 1536x1024, 1024x1536 (https://platform.openai.com/docs/api-reference/images/create).
 * - Zhipu CogView-3-plus / CogView-4 (https://docs.bigmodel.cn/api-reference): 1024x1024, 768x1344,
 *   864x1152, 1344x768, 1152x864, 1440x720, 720x1440.
 * - Volcengine Seedream 3.0 t2i: any WxH with sides in [512, 2048].
 * - SiliconFlow image_size (https://docs.siliconflow.cn/cn/api-reference/images/images-generations):
 *   Kolors 1024x1024, 960x1280, 768x1024, 720x1440, 720x1280; Qwen-Image 1328x1328, 1664x928,
 *   928x1664, 1472x1140, 1140x1472, 1584x1056, 1056x1584; others (FLUX.1) 1024x1024, 512x1024,
 *   768x512, 768x1024, 1024x576, 576x1024.
 * - DashScope `size` "W*H" (https://help.aliyun.com/zh/model-studio/text-to-image-api-reference):
 *   wanx-v1 1024*1024, 720*1280, 1280*720, 768*1152; wanx2.x / wan2.x any sides in [512, 1440].
 */
export type AspectRatio = '9:16' | '16:9' | '1:1' | '4:3' | '3:4';
export type Resolution = '720p' | '1080p';
export type ImageApiFormat = 'openai' | 'siliconflow' | 'dashscope';

export interface Size {
  width: number;
  height: number;
}

export interface VendorSize extends Size {
  /** The value to send: "1024x1792" (OpenAI, SiliconFlow) or "720*1280" (DashScope). */
  param: string;
  /** False when the vendor cannot make the size asked for and the nearest allowed one was chosen. */
  exact: boolean;
  /** Which rule chose it, for logs and the UI ("nearest of dall-e-3's sizes"). */
  rule: string;
}

const SHORT_SIDE: Record<Resolution, number> = { '720p': 720, '1080p': 1080 };

/** The frame the project renders at: the short side is the resolution's lines. */
export function targetSize(aspect: AspectRatio, resolution: Resolution): Size {
  const [a, b] = aspect.split(':').map(Number);
  const short = SHORT_SIDE[resolution];
  // Even sides: video encoders (yuv420p) need them.
  const long = Math.round((short * Math.max(a, b)) / Math.min(a, b) / 2) * 2;
  return a >= b ? { width: long, height: short } : { width: short, height: long };
}

type Rule = { name: string; list: string[] } | { name: string; range: [number, number]; multiple: number };

const list = (name: string, sizes: string): Rule => ({ name, list: sizes.split(' ') });

function ruleFor(format: ImageApiFormat, model: string): Rule {
  const m = model.toLowerCase();
  if (format === 'openai') {
    if (m.startsWith('dall-e-2')) return list("dall-e-2's sizes", '256x256 512x512 1024x1024');
    if (m.startsWith('gpt-image')) return list("gpt-image's sizes", '1024x1024 1536x1024 1024x1536');
    if (m.startsWith('cogview')) return list("CogView's sizes", '1024x1024 768x1344 864x1152 1344x768 1152x864 1440x720 720x1440');
    if (m.includes('seedream')) return { name: "Seedream's range 512–2048", range: [512, 2048], multiple: 8 };
    // dall-e-3's list is the safest guess for an unknown model behind the OpenAI shape.
    return list("dall-e-3's sizes", '1024x1024 1792x1024 1024x1792');
  }
  if (format === 'siliconflow') {
    if (m.includes('kolors')) return list("Kolors' image sizes", '1024x1024 960x1280 768x1024 720x1440 720x1280');
    if (m.includes('qwen-image')) return list("Qwen-Image's image sizes", '1328x1328 1664x928 928x1664 1472x1140 1140x1472 1584x1056 1056x1584');
    return list("FLUX's image sizes", '1024x1024 512x1024 768x512 768x1024 1024x576 576x1024');
  }
  if (m === 'wanx-v1') return list("wanx-v1's sizes", '1024x1024 720x1280 1280x720 768x1152');
  return { name: "wan2's range 512–1440", range: [512, 1440], multiple: 8 };
}

/** The size to ask a vendor for, for a wanted width × height. */
export function vendorImageSize(format: ImageApiFormat, model: string, wanted: Size): VendorSize {
  const rule = ruleFor(format, model);
  const chosen = 'list' in rule ? nearest(rule.list.map(parse), wanted) : fitRange(wanted, rule.range, rule.multiple);
  const sep = format === 'dashscope' ? '*' : 'x';
  return {
    ...chosen,
    param: `${chosen.width}${sep}${chosen.height}`,
    exact: chosen.width === wanted.width && chosen.height === wanted.height,
    rule: 'list' in rule ? `nearest of ${rule.name}` : `scaled into ${rule.name}`,
  };
}

/** Aspect and resolution → the vendor's size (the project settings route). */
export function imageSizeFor(format: ImageApiFormat, model: string, aspect: AspectRatio, resolution: Resolution): VendorSize & { target: Size } {
  const target = targetSize(aspect, resolution);
  return { ...vendorImageSize(format, model, target), target };
}

function parse(s: string): Size {
  const [width, height] = s.split('x').map(Number);
  return { width, height };
}

/** The shape matters more than the pixel count: a square for a portrait shot crops half the frame. */
function nearest(sizes: Size[], wanted: Size): Size {
  const score = (s: Size) =>
    4 * Math.abs(Math.log(s.width / s.height / (wanted.width / wanted.height))) + Math.abs(Math.log((s.width * s.height) / (wanted.width * wanted.height)));
  return sizes.reduce((best, s) => (score(s) < score(best) ? s : best));
}

function fitRange(wanted: Size, [min, max]: [number, number], multiple: number): Size {
  let scale = 1;
  const long = Math.max(wanted.width, wanted.height);
  const short = Math.min(wanted.width, wanted.height);
  if (long * scale > max) scale = max / long;
  if (short * scale < min) scale = min / short;
  const side = (v: number) => Math.min(max, Math.max(min, Math.round((v * scale) / multiple) * multiple));
  return { width: side(wanted.width), height: side(wanted.height) };
}
