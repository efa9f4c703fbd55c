/**
 * The offline image model (DESIGN §9): no model runs here. A shot's words pick a light, a palette and
 * a few elements from a small table (夜 → night sky with moon and stars, 雨 → rain, 海 → waves …);
 * they are drawn as SVG and rasterised by sharp (librsvg), with the shot's scene text set in Noto Sans
 * CJK SC on a soft panel, so a newcomer with no key sees their own story take shape. The caller labels
 * the result as simulated.
 *
 * Deterministic: every random choice comes from a PRNG seeded with a hash of the text, and librsvg and
 * the PNG encoder add no randomness, so the same text gives the same bytes.
 */
import { createHash } from 'node:crypto';
import { sharp } from '../../media/sharp.ts';
import { drawableText } from '../../media/cjk-font.ts';
import { escapeXml, SVG_FONT_FAMILY, wrapText } from '../../media/svg-text.ts';

export interface OfflineImageRequest {
  scene: string;
  narration?: string;
  prompt?: string;
  width: number;
  height: number;
}

type Light = 'night' | 'dusk' | 'dawn' | 'day' | 'overcast';
type Element =
  | 'moon' | 'stars' | 'sun' | 'rain' | 'snow' | 'sea' | 'city' | 'forest' | 'mountain'
  | 'lighthouse' | 'whale' | 'cat' | 'house' | 'fire' | 'flower';

interface Cue {
  words: string[];
  light?: Light;
  elements?: Element[];
}

/** Keyword → light and elements. The first cue that sets a light wins; elements accumulate. */
const CUES: Cue[] = [
  { words: ['夜', '晚', '深夜', 'night', 'midnight', 'dark'], light: 'night', elements: ['stars'] },
  { words: ['月', 'moon'], light: 'night', elements: ['moon', 'stars'] },
  { words: ['星', 'star'], light: 'night', elements: ['stars'] },
  { words: ['黄昏', '傍晚', '夕阳', '落日', 'sunset', 'dusk', 'evening'], light: 'dusk', elements: ['sun'] },
  { words: ['日出', '清晨', '黎明', '早晨', 'sunrise', 'dawn', 'morning'], light: 'dawn', elements: ['sun'] },
  { words: ['雨', 'rain', 'storm', '暴风'], light: 'overcast', elements: ['rain'] },
  { words: ['雪', 'snow', 'winter', '冬'], light: 'overcast', elements: ['snow'] },
  { words: ['晴', '阳光', '白天', '正午', 'sunny', 'sunlight', 'noon', 'day'], light: 'day', elements: ['sun'] },
  { words: ['海', '洋', '浪', '岸', 'sea', 'ocean', 'wave', 'beach', 'shore'], elements: ['sea'] },
  { words: ['城', '街', '楼', 'city', 'street', 'town', 'building', 'urban'], elements: ['city'] },
  { words: ['森林', '树', '林', 'forest', 'tree', 'woods'], elements: ['forest'] },
  { words: ['山', '峰', 'mountain', 'hill', 'peak'], elements: ['mountain'] },
  { words: ['灯塔', 'lighthouse'], elements: ['lighthouse', 'sea'] },
  { words: ['鲸', 'whale'], elements: ['whale', 'sea'] },
  { words: ['猫', 'cat', 'kitten'], elements: ['cat'] },
  { words: ['家', '屋', '房', '村', 'home', 'house', 'cottage', 'village'], elements: ['house'] },
  { words: ['火', '篝火', '炉', 'fire', 'campfire', 'flame'], elements: ['fire'] },
  { words: ['花', '春', 'flower', 'spring', 'garden'], elements: ['flower'] },
];

interface Palette {
  sky: [string, string, string];
  ground: [string, string];
  sea: [string, string];
  silhouette: string;
  glow: string;
  text: string;
}

const PALETTES: Record<Light, Palette> = {
  night: { sky: ['#060a1f', '#142052', '#2d3f7c'], ground: ['#0d1428', '#05080f'], sea: ['#10204a', '#050b1c'], silhouette: '#070b18', glow: '#ffe9a8', text: '#f5f1e6' },
  dusk: { sky: ['#2a1846', '#a8456b', '#f5a25d'], ground: ['#3b1e33', '#1a0d1c'], sea: ['#6b3a5e', '#241331'], silhouette: '#22122a', glow: '#ffd27a', text: '#fff5e8' },
  dawn: { sky: ['#4a6fb0', '#f4a9a0', '#ffe0a6'], ground: ['#5c6e57', '#2f3b2e'], sea: ['#5d8fc4', '#2c4f7d'], silhouette: '#2f3645', glow: '#fff2c4', text: '#ffffff' },
  day: { sky: ['#3f8fe0', '#8cc4f2', '#dff0ff'], ground: ['#7fb069', '#4e7d3e'], sea: ['#3a8dd1', '#1d5b93'], silhouette: '#3a4b5c', glow: '#fffbe0', text: '#ffffff' },
  overcast: { sky: ['#3a4452', '#5f6b7a', '#8a95a1'], ground: ['#3f4a46', '#242b29'], sea: ['#4a5d6e', '#27343f'], silhouette: '#1f262e', glow: '#f2e6c4', text: '#f4f6f8' },
};


export async function renderOfflineImage(req: OfflineImageRequest): Promise<Buffer> {
  const svg = composeOfflineSvg(req);
  return sharp(Buffer.from(svg)).png({ compressionLevel: 6 }).toBuffer();
}

/** The SVG the PNG is rasterised from (exported for inspection; the PNG is the product). */
export function composeOfflineSvg(req: OfflineImageRequest): string {
  const width = Math.max(16, Math.round(req.width));
  const height = Math.max(16, Math.round(req.height));
  const words = [req.scene, req.narration ?? '', req.prompt ?? ''].join(' ').toLowerCase();
  const rand = mulberry32(seedOf(`${req.scene}\u0000${req.narration ?? ''}\u0000${req.prompt ?? ''}`));
  const { light, elements } = readCues(words, rand);
  const base = PALETTES[light];
  // Snow lies on the ground: pale, moonlit blue at night.
  const p: Palette = elements.has('snow') ? { ...base, ground: light === 'night' ? ['#5a6a84', '#2e3850'] : ['#e4eaf1', '#aeb9c6'] } : base;
  const s = Math.min(width, height) / 720; // every size below is designed at 720 px on the short side
  const horizon = Math.round(height * (0.58 + rand() * 0.07));
  const parts: string[] = [];

  parts.push(`<defs>
  <linearGradient id="sky" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="${p.sky[0]}"/><stop offset="0.6" stop-color="${p.sky[1]}"/><stop offset="1" stop-color="${p.sky[2]}"/></linearGradient>
  <linearGradient id="ground" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="${p.ground[0]}"/><stop offset="1" stop-color="${p.ground[1]}"/></linearGradient>
  <linearGradient id="sea" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="${p.sea[0]}"/><stop offset="1" stop-color="${p.sea[1]}"/></linearGradient>
  <radialGradient id="glow"><stop offset="0" stop-color="${p.glow}" stop-opacity="0.55"/><stop offset="1" stop-color="${p.glow}" stop-opacity="0"/></radialGradient>
  <radialGradient id="fireglow"><stop offset="0" stop-color="#ffb347" stop-opacity="0.7"/><stop offset="1" stop-color="#ff6a00" stop-opacity="0"/></radialGradient>
  <radialGradient id="vignette" cx="0.5" cy="0.45" r="0.75"><stop offset="0.6" stop-color="#000" stop-opacity="0"/><stop offset="1" stop-color="#000" stop-opacity="0.45"/></radialGradient>
</defs>`);
  parts.push(`<rect width="${width}" height="${height}" fill="url(#sky)"/>`);

  if (elements.has('stars')) parts.push(stars(rand, width, horizon, s));
  if (elements.has('moon')) parts.push(moon(rand, width, horizon, s, p));
  if (elements.has('sun')) parts.push(sun(rand, width, horizon, s, p, light));
  if (elements.has('mountain')) parts.push(mountains(rand, width, horizon, s, p));

  const hasSea = elements.has('sea');
  // Ground first; the sea covers the part of it that is water.
  parts.push(`<rect y="${horizon}" width="${width}" height="${height - horizon}" fill="url(#ground)"/>`);
  if (hasSea) parts.push(sea(rand, width, height, horizon, s, p, light));
  else parts.push(foreground(rand, width, height, horizon, s, p));
  if (elements.has('forest')) parts.push(forest(rand, width, horizon, s, p, hasSea));
  if (elements.has('city')) parts.push(city(rand, width, horizon, s, p, light, hasSea));
  if (elements.has('lighthouse')) parts.push(lighthouse(rand, width, horizon, s, p, light));
  if (elements.has('whale')) parts.push(whale(rand, width, height, horizon, s, p));
  if (elements.has('house')) parts.push(house(rand, width, horizon, s, p, light));
  if (elements.has('fire')) parts.push(fire(rand, width, horizon, s));
  if (elements.has('flower')) parts.push(flowers(rand, width, height, horizon, s));
  if (elements.has('cat')) parts.push(cat(rand, width, horizon, s, p));
  if (elements.has('rain')) parts.push(rain(rand, width, height, s));
  if (elements.has('snow')) parts.push(snow(rand, width, height, s));
  parts.push(`<rect width="${width}" height="${height}" fill="url(#vignette)"/>`);
  parts.push(caption(req.scene, width, height, s, p));

  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${parts.join('\n')}</svg>`;
}

function readCues(words: string, rand: () => number): { light: Light; elements: Set<Element> } {
  let light: Light | undefined;
  const elements = new Set<Element>();
  for (const cue of CUES) {
    if (!cue.words.some((w) => words.includes(w))) continue;
    light ??= cue.light;
    for (const e of cue.elements ?? []) elements.add(e);
  }
  // Rain at night stays night; "night" read after "rain" must not lose to overcast.
  if (light === 'overcast' && /夜|晚|night|midnight/.test(words)) light = 'night';
  if (light === 'night') elements.delete('sun');
  if (light === 'overcast' || elements.has('rain')) {
    elements.delete('sun');
    elements.delete('stars');
    elements.delete('moon');
  }
  if (light === undefined) {
    // Words with no cue still get a sky of their own, chosen by the text's hash.
    const lights: Light[] = ['dawn', 'day', 'dusk', 'night'];
    light = lights[Math.floor(rand() * lights.length)];
    if (light === 'night') elements.add('stars').add('moon');
    else elements.add('sun');
  }
  if (![...elements].some((e) => ['sea', 'city', 'forest', 'mountain', 'house'].includes(e))) elements.add('mountain');
  return { light, elements };
}

function stars(rand: () => number, w: number, horizon: number, s: number): string {
  const out: string[] = [];
  const count = Math.round((w * horizon) / (9000 * s * s)) + 20;
  for (let i = 0; i < count; i++) {
    const r = (0.6 + rand() * 1.6) * s;
    out.push(`<circle cx="${f(rand() * w)}" cy="${f(rand() * horizon * 0.9)}" r="${f(r)}" fill="#fff" fill-opacity="${f(0.35 + rand() * 0.6)}"/>`);
  }
  return `<g>${out.join('')}</g>`;
}

function moon(rand: () => number, w: number, horizon: number, s: number, p: Palette): string {
  const cx = w * (0.2 + rand() * 0.6);
  const cy = horizon * (0.18 + rand() * 0.15);
  const r = 46 * s;
  return `<circle cx="${f(cx)}" cy="${f(cy)}" r="${f(r * 3.2)}" fill="url(#glow)"/>
<circle cx="${f(cx)}" cy="${f(cy)}" r="${f(r)}" fill="${p.glow}"/>
<circle cx="${f(cx - r * 0.3)}" cy="${f(cy + r * 0.2)}" r="${f(r * 0.16)}" fill="#000" fill-opacity="0.08"/>
<circle cx="${f(cx + r * 0.35)}" cy="${f(cy - r * 0.25)}" r="${f(r * 0.1)}" fill="#000" fill-opacity="0.08"/>`;
}

function sun(rand: () => number, w: number, horizon: number, s: number, p: Palette, light: Light): string {
  const low = light === 'dusk' || light === 'dawn';
  const cx = w * (0.25 + rand() * 0.5);
  const cy = low ? horizon - 30 * s : horizon * (0.2 + rand() * 0.15);
  const r = (low ? 70 : 52) * s;
  const color = light === 'dusk' ? '#ffb066' : light === 'dawn' ? '#fff0b8' : '#fffbe6';
  return `<circle cx="${f(cx)}" cy="${f(cy)}" r="${f(r * 4)}" fill="url(#glow)"/>
<circle cx="${f(cx)}" cy="${f(cy)}" r="${f(r)}" fill="${color}" fill-opacity="0.95"/>`;
}

function mountains(rand: () => number, w: number, horizon: number, s: number, p: Palette): string {
  const out: string[] = [];
  for (let layer = 0; layer < 2; layer++) {
    const peak = (layer === 0 ? 260 : 170) * s;
    let d = `M0 ${horizon}`;
    const steps = 5 + Math.floor(rand() * 3);
    for (let i = 0; i <= steps; i++) {
      const x = (w * i) / steps;
      const y = horizon - peak * (0.35 + rand() * 0.65);
      d += ` L${f(x)} ${f(i % 2 === 0 ? y : y + peak * 0.35)}`;
    }
    d += ` L${w} ${horizon} Z`;
    out.push(`<path d="${d}" fill="${p.silhouette}" fill-opacity="${layer === 0 ? 0.55 : 0.85}"/>`);
  }
  return out.join('');
}

function sea(rand: () => number, w: number, h: number, horizon: number, s: number, p: Palette, light: Light): string {
  const out = [`<rect y="${horizon}" width="${w}" height="${h - horizon}" fill="url(#sea)"/>`];
  const shine = light === 'day' || light === 'dawn' ? '#ffffff' : p.glow;
  for (let i = 0; i < 14; i++) {
    const y = horizon + ((h - horizon) * (i + 0.5 + rand() * 0.5)) / 14;
    const amp = (3 + i * 0.8) * s;
    const len = (40 + i * 6) * s;
    let d = `M${f(-rand() * len)} ${f(y)}`;
    for (let x = 0; x < w + len; x += len) d += ` q${f(len / 4)} ${f(-amp)} ${f(len / 2)} 0 t${f(len / 2)} 0`;
    out.push(`<path d="${d}" fill="none" stroke="${shine}" stroke-opacity="${f(0.08 + 0.12 * rand())}" stroke-width="${f((1 + i * 0.15) * s)}"/>`);
  }
  return out.join('');
}

/** A nearer, darker slope so open ground has depth rather than a flat band. */
function foreground(rand: () => number, w: number, h: number, horizon: number, s: number, p: Palette): string {
  const y0 = horizon + (h - horizon) * (0.35 + rand() * 0.15);
  const y1 = horizon + (h - horizon) * (0.25 + rand() * 0.15);
  return `<path d="M0 ${f(y0)} Q${f(w * 0.5)} ${f(y1 - 40 * s)} ${w} ${f(y1)} L${w} ${h} L0 ${h} Z" fill="${p.ground[1]}" fill-opacity="0.6"/>`;
}

function forest(rand: () => number, w: number, horizon: number, s: number, p: Palette, besideSea: boolean): string {
  const out: string[] = [];
  const from = besideSea ? w * 0.55 : 0;
  const colors = p.sky === PALETTES.night.sky ? ['#0c1a16', '#07110d'] : ['#1d3b2a', '#12281c'];
  for (let row = 0; row < 2; row++) {
    const count = Math.round((w - from) / ((row === 0 ? 38 : 52) * s));
    for (let i = 0; i < count; i++) {
      const x = from + ((i + rand() * 0.6) * (w - from)) / count;
      const th = (row === 0 ? 90 : 150) * s * (0.7 + rand() * 0.6);
      const tw = th * 0.38;
      const base = horizon + row * 26 * s;
      out.push(`<path d="M${f(x)} ${f(base - th)} L${f(x + tw / 2)} ${f(base)} L${f(x - tw / 2)} ${f(base)} Z" fill="${colors[row]}" fill-opacity="${row === 0 ? 0.75 : 1}"/>`);
    }
  }
  return `<g>${out.join('')}</g>`;
}

function city(rand: () => number, w: number, horizon: number, s: number, p: Palette, light: Light, besideSea: boolean): string {
  const out: string[] = [];
  const lit = light === 'night' || light === 'dusk' || light === 'overcast';
  const to = besideSea ? w * 0.6 : w;
  let x = -rand() * 20 * s;
  while (x < to) {
    const bw = (40 + rand() * 50) * s;
    const bh = (90 + rand() * 260) * s;
    out.push(`<rect x="${f(x)}" y="${f(horizon - bh)}" width="${f(bw)}" height="${f(bh + 2)}" fill="${p.silhouette}"/>`);
    if (lit) {
      for (let wy = horizon - bh + 10 * s; wy < horizon - 12 * s; wy += 16 * s) {
        for (let wx = x + 6 * s; wx < x + bw - 10 * s; wx += 12 * s) {
          if (rand() < 0.35) out.push(`<rect x="${f(wx)}" y="${f(wy)}" width="${f(5 * s)}" height="${f(7 * s)}" fill="#ffd98a" fill-opacity="${f(0.5 + rand() * 0.5)}"/>`);
        }
      }
      // Lights mirrored on wet streets or water: soft vertical streaks under the building.
      for (let k = 0; k < 3; k++) {
        out.push(`<rect x="${f(x + bw * (0.2 + rand() * 0.6))}" y="${horizon + 4}" width="${f(2.5 * s)}" height="${f(bh * (0.2 + rand() * 0.4))}" fill="#ffd98a" fill-opacity="${f(0.12 + rand() * 0.15)}"/>`);
      }
    }
    x += bw + rand() * 6 * s;
  }
  return `<g>${out.join('')}</g>`;
}

function lighthouse(rand: () => number, w: number, horizon: number, s: number, p: Palette, light: Light): string {
  const x = w * (0.72 + rand() * 0.12);
  const baseY = horizon + 10 * s;
  const h = 210 * s;
  const top = baseY - h;
  const beam = light === 'night' || light === 'dusk' || light === 'overcast'
    ? `<path d="M${f(x)} ${f(top + 12 * s)} L${f(x - w * 0.9)} ${f(top - 80 * s)} L${f(x - w * 0.9)} ${f(top + 90 * s)} Z" fill="${p.glow}" fill-opacity="0.18"/>`
    : '';
  return `${beam}<path d="M${f(x - 60 * s)} ${f(baseY + 14 * s)} Q${f(x)} ${f(baseY - 26 * s)} ${f(x + 70 * s)} ${f(baseY + 14 * s)} Z" fill="${p.silhouette}"/>
<path d="M${f(x - 16 * s)} ${f(baseY)} L${f(x - 10 * s)} ${f(top + 24 * s)} L${f(x + 10 * s)} ${f(top + 24 * s)} L${f(x + 16 * s)} ${f(baseY)} Z" fill="#e9e4da"/>
<rect x="${f(x - 14 * s)}" y="${f(top + 60 * s)}" width="${f(28 * s)}" height="${f(18 * s)}" fill="#b8423a"/>
<rect x="${f(x - 14 * s)}" y="${f(top + 120 * s)}" width="${f(28 * s)}" height="${f(18 * s)}" fill="#b8423a"/>
<rect x="${f(x - 12 * s)}" y="${f(top + 6 * s)}" width="${f(24 * s)}" height="${f(18 * s)}" fill="${p.glow}"/>
<path d="M${f(x - 15 * s)} ${f(top + 6 * s)} L${f(x)} ${f(top - 8 * s)} L${f(x + 15 * s)} ${f(top + 6 * s)} Z" fill="#3a3a44"/>
<circle cx="${f(x)}" cy="${f(top + 15 * s)}" r="${f(40 * s)}" fill="url(#glow)"/>`;
}

function whale(rand: () => number, w: number, h: number, horizon: number, s: number, p: Palette): string {
  const x = w * (0.2 + rand() * 0.35);
  const y = horizon + (h - horizon) * 0.22;
  const k = 1.1 * s;
  return `<g transform="translate(${f(x)} ${f(y)}) scale(${f(k)})" fill="${p.silhouette}" fill-opacity="0.85">
<path d="M-120 10 C-100 -40 40 -50 90 -10 C110 5 120 10 140 -20 L150 -30 L145 0 L160 10 L135 12 C110 30 -60 50 -120 10 Z"/>
<ellipse cx="0" cy="22" rx="130" ry="8" fill="#fff" fill-opacity="0.12"/>
<circle cx="-80" cy="-40" r="3" fill="#fff" fill-opacity="0.6"/><circle cx="-86" cy="-58" r="2.4" fill="#fff" fill-opacity="0.5"/><circle cx="-78" cy="-72" r="2" fill="#fff" fill-opacity="0.4"/>
</g>`;
}

function house(rand: () => number, w: number, horizon: number, s: number, p: Palette, light: Light): string {
  const x = w * (0.12 + rand() * 0.25);
  const bw = 120 * s;
  const bh = 80 * s;
  const y = horizon + 30 * s;
  const lit = light !== 'day';
  const win = lit ? '#ffcf6e' : '#9fb8cc';
  return `<g>${lit ? `<circle cx="${f(x + bw / 2)}" cy="${f(y - bh / 2)}" r="${f(110 * s)}" fill="url(#glow)"/>` : ''}
<rect x="${f(x)}" y="${f(y - bh)}" width="${f(bw)}" height="${f(bh)}" fill="${p.silhouette}"/>
<path d="M${f(x - 14 * s)} ${f(y - bh)} L${f(x + bw / 2)} ${f(y - bh - 62 * s)} L${f(x + bw + 14 * s)} ${f(y - bh)} Z" fill="${p.silhouette}"/>
<rect x="${f(x + bw * 0.62)}" y="${f(y - bh - 50 * s)}" width="${f(14 * s)}" height="${f(30 * s)}" fill="${p.silhouette}"/>
<rect x="${f(x + 18 * s)}" y="${f(y - bh + 22 * s)}" width="${f(26 * s)}" height="${f(24 * s)}" fill="${win}"/>
<rect x="${f(x + bw - 46 * s)}" y="${f(y - bh + 22 * s)}" width="${f(26 * s)}" height="${f(24 * s)}" fill="${win}"/>
</g>`;
}

function fire(rand: () => number, w: number, horizon: number, s: number): string {
  const x = w * (0.45 + rand() * 0.2);
  const y = horizon + 60 * s;
  const flames: string[] = [];
  for (let i = 0; i < 3; i++) {
    const fh = (60 - i * 14) * s;
    const fw = (26 - i * 6) * s;
    const color = ['#ff6a1a', '#ffa12e', '#ffe27a'][i];
    flames.push(`<path d="M${f(x - fw)} ${f(y)} Q${f(x - fw)} ${f(y - fh * 0.6)} ${f(x)} ${f(y - fh)} Q${f(x + fw)} ${f(y - fh * 0.6)} ${f(x + fw)} ${f(y)} Z" fill="${color}"/>`);
  }
  return `<circle cx="${f(x)}" cy="${f(y - 20 * s)}" r="${f(160 * s)}" fill="url(#fireglow)"/>
<rect x="${f(x - 40 * s)}" y="${f(y - 4 * s)}" width="${f(80 * s)}" height="${f(10 * s)}" rx="${f(5 * s)}" fill="#4a2a18" transform="rotate(8 ${f(x)} ${f(y)})"/>
<rect x="${f(x - 40 * s)}" y="${f(y - 4 * s)}" width="${f(80 * s)}" height="${f(10 * s)}" rx="${f(5 * s)}" fill="#3a2012" transform="rotate(-8 ${f(x)} ${f(y)})"/>
${flames.join('')}`;
}

function flowers(rand: () => number, w: number, h: number, horizon: number, s: number): string {
  const out: string[] = [];
  const colors = ['#ff8fab', '#ffd166', '#f4f1de', '#c77dff'];
  for (let i = 0; i < 40; i++) {
    const x = rand() * w;
    const y = horizon + 20 * s + rand() * (h - horizon) * 0.4;
    out.push(`<circle cx="${f(x)}" cy="${f(y)}" r="${f((3 + rand() * 4) * s)}" fill="${colors[Math.floor(rand() * colors.length)]}" fill-opacity="0.85"/>`);
  }
  return `<g>${out.join('')}</g>`;
}

function cat(rand: () => number, w: number, horizon: number, s: number, p: Palette): string {
  const x = w * (0.55 + rand() * 0.25);
  const y = horizon + 70 * s;
  const k = s;
  return `<g transform="translate(${f(x)} ${f(y)}) scale(${f(k)})" fill="${p.silhouette}">
<ellipse cx="0" cy="-30" rx="26" ry="32"/>
<circle cx="0" cy="-72" r="19"/>
<path d="M-17 -80 L-14 -104 L-3 -88 Z"/><path d="M17 -80 L14 -104 L3 -88 Z"/>
<path d="M22 -8 C52 -6 58 -40 44 -58" fill="none" stroke="${p.silhouette}" stroke-width="7" stroke-linecap="round"/>
</g>`;
}

function rain(rand: () => number, w: number, h: number, s: number): string {
  const out: string[] = [];
  const count = Math.round((w * h) / (2600 * s * s));
  for (let i = 0; i < count; i++) {
    const x = rand() * (w + 60 * s);
    const y = rand() * h;
    const len = (14 + rand() * 22) * s;
    out.push(`<line x1="${f(x)}" y1="${f(y)}" x2="${f(x - len * 0.3)}" y2="${f(y + len)}" stroke="#cfd8e3" stroke-opacity="${f(0.18 + rand() * 0.3)}" stroke-width="${f(1.2 * s)}"/>`);
  }
  return `<g>${out.join('')}</g>`;
}

function snow(rand: () => number, w: number, h: number, s: number): string {
  const out: string[] = [];
  const count = Math.round((w * h) / (3200 * s * s));
  for (let i = 0; i < count; i++) {
    out.push(`<circle cx="${f(rand() * w)}" cy="${f(rand() * h)}" r="${f((1.2 + rand() * 2.8) * s)}" fill="#fff" fill-opacity="${f(0.5 + rand() * 0.5)}"/>`);
  }
  return `<g>${out.join('')}</g>`;
}

/**
 * The scene text on a soft panel in the upper middle. A clip's camera moves (zoom up to 1.8×, pans and
 * tilts at 1.4×) crop the picture's edges, so the caption stays inside the part every move keeps on
 * screen — the middle 42% across, from 0.29 to 0.71 down — and above the burned subtitles' band.
 */
function caption(scene: string, w: number, h: number, s: number, p: Palette): string {
  const text = drawableText(scene.replace(/\s+/g, ' ').trim());
  if (!text) return '';
  const boxWidth = w * 0.42;
  const fontSize = Math.max(12, Math.round(Math.min(34 * s, boxWidth / 8)));
  const lineHeight = Math.round(fontSize * 1.4);
  const pad = Math.round(fontSize * 0.6);
  const lines = wrapText(text, boxWidth - pad * 2, fontSize, 4);
  const top = Math.round(h * 0.3);
  const firstBaseline = top + pad + fontSize;
  const panelHeight = lines.length * lineHeight + pad * 2 - (lineHeight - fontSize);
  const tspans = lines
    .map((line, i) => `<text x="${w / 2}" y="${firstBaseline + i * lineHeight}">${escapeXml(line)}</text>`)
    .join('');
  return `<rect x="${f((w - boxWidth) / 2)}" y="${top}" width="${f(boxWidth)}" height="${panelHeight + Math.round(fontSize * 0.25)}" rx="${pad}" fill="#000" fill-opacity="0.42"/>
<g font-family="${SVG_FONT_FAMILY}" font-size="${fontSize}" fill="${p.text}" text-anchor="middle" letter-spacing="${f(fontSize * 0.04)}">${tspans}</g>`;
}


function f(n: number): string {
  return (Math.round(n * 10) / 10).toString();
}

function seedOf(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32LE(0);
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
