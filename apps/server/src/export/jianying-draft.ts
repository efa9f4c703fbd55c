/**
 * A 剪映专业版 (JianyingPro desktop) draft of the story, zipped: the user unzips `<name>/` into the
 * editor's draft folder (…/JianyingPro Drafts/) and finds every shot, narration and subtitle line on
 * its own editable segment.
 *
 * Format sources (no official documentation exists; these follow published open-source writers):
 * - pyJianYingDraft 0.2.x (GuanYixuan/pyJianYingDraft; tested by its authors on 剪映 5.9):
 *   `assets/draft_content_template.json` (top level: canvas_config, config, fps, materials.*, tracks,
 *   version 360000, new_version "110.0.0", platform app_version "5.9.0"), `assets/draft_meta_info.json`,
 *   `local_materials.py` (videos: type "video"|"photo", duration µs, photo = 3 h; audios: type
 *   "extract_music", music_id = local_material_id = id), `segment.py` (segment common fields,
 *   source/target_timerange in µs, speed = source ÷ target duration, `clip`, `uniform_scale`, one
 *   `speeds` material per audio/video segment in extra_material_refs), `video_segment.py`
 *   (hdr_settings, canvas background materials), `audio_segment.py` (clip/hdr_settings null),
 *   `text_segment.py` (texts: `content` is a JSON string {styles:[{fill,range,size,…}], text},
 *   type "subtitle" when wrapping; imported subtitles sit at transform y = -0.8), `track.py`
 *   (render_index: video/audio 0, text 15000).
 * - Media paths: drafts that carry their media inside the draft folder reference it as
 *   `##_draftpath_placeholder_0E685133-18CE-45ED-8CB8-2904A212EC80_##/<relative path>`; the editor
 *   substitutes the folder it finds the draft in. That UUID is a constant written by 剪映 itself and
 *   reused verbatim by the published writers (NarratoAI's jianying draft export and others); it is not
 *   the draft's own `draft_id`, which is a fresh upper-case UUID in both JSON files.
 * Versions: 剪映 6+ encrypts the draft_content.json it saves, but still opens unencrypted drafts like
 * this one (pyJianYingDraft README: generated drafts "支持剪映5及以上的所有版本").
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';
import { probe } from './ffmpeg-process.ts';

export interface JianyingDraftInput {
  /** The .zip to write. */
  out: string;
  name: string;
  width: number;
  height: number;
  fps: number;
  shots: { clip: string; duration_s: number; narration?: string; narration_duration_s?: number }[];
  /** Times on the draft's timeline (shots back to back, no transitions). */
  subtitles: { text: string; start_s: number; end_s: number }[];
}

export const DRAFT_PATH_PLACEHOLDER = '##_draftpath_placeholder_0E685133-18CE-45ED-8CB8-2904A212EC80_##';
const MEDIA_DIR = 'Resources/local';
const APP_VERSION = '5.9.0';

const us = (seconds: number) => Math.round(seconds * 1_000_000);
const hexId = () => randomUUID().replaceAll('-', '');

interface Timerange {
  start: number;
  duration: number;
}

export interface JianyingDraftResult {
  out: string;
  draft_id: string;
  folder: string;
  duration_us: number;
  files: string[];
}

export async function writeJianyingDraft(input: JianyingDraftInput, tools: { ffprobe: string } = { ffprobe: 'ffprobe' }): Promise<JianyingDraftResult> {
  if (input.shots.length === 0) throw new RangeError('a draft needs at least one shot');
  const folder = safeFolderName(input.name);
  const draftId = randomUUID().toUpperCase();
  const zipEntries: { source: string; entry: string }[] = [];
  const content = emptyDraftContent(input, draftId);
  const videoSegments: object[] = [];
  const audioSegments: object[] = [];
  const textSegments: object[] = [];

  let at = 0;
  for (const [i, shot] of input.shots.entries()) {
    const n = String(i + 1).padStart(2, '0');
    const target: Timerange = { start: at, duration: us(shot.duration_s) };
    at += target.duration;

    const info = await probe(tools.ffprobe, shot.clip);
    const video = info.streams.find((s) => s.codec_type === 'video');
    if (!video) throw new RangeError(`shot ${i + 1}: ${shot.clip} has no video stream`);
    const clipName = `shot-${n}${path.extname(shot.clip) || '.mp4'}`;
    zipEntries.push({ source: shot.clip, entry: `${MEDIA_DIR}/${clipName}` });
    const clipUs = us(info.duration_s);
    const videoMaterial = {
      audio_fade: null,
      category_id: '',
      category_name: 'local',
      check_flag: 63487,
      crop: { upper_left_x: 0, upper_left_y: 0, upper_right_x: 1, upper_right_y: 0, lower_left_x: 0, lower_left_y: 1, lower_right_x: 1, lower_right_y: 1 },
      crop_ratio: 'free',
      crop_scale: 1,
      duration: clipUs,
      height: video.height,
      id: hexId(),
      local_material_id: '',
      material_id: '',
      material_name: clipName,
      media_path: '',
      path: `${DRAFT_PATH_PLACEHOLDER}/${MEDIA_DIR}/${clipName}`,
      type: 'video',
      width: video.width,
    };
    videoMaterial.material_id = videoMaterial.id;
    content.materials.videos.push(videoMaterial);
    // A clip shorter than its shot is slowed to fill it (剪映 has no "hold last frame" on a segment).
    const source: Timerange = { start: 0, duration: Math.min(clipUs, target.duration) };
    const speed = speedMaterial(source.duration / target.duration);
    const canvas = { id: hexId(), type: 'canvas_color', color: '', blur: 0, image: '', source_platform: 0 };
    content.materials.speeds.push(speed);
    content.materials.canvases.push(canvas);
    videoSegments.push({
      ...segmentCommon(videoMaterial.id, target),
      source_timerange: source,
      speed: speed.speed,
      volume: 1,
      extra_material_refs: [speed.id, canvas.id],
      is_tone_modify: false,
      clip: { alpha: 1, flip: { horizontal: false, vertical: false }, rotation: 0, scale: { x: 1, y: 1 }, transform: { x: 0, y: 0 } },
      uniform_scale: { on: true, value: 1 },
      hdr_settings: { intensity: 1, mode: 1, nits: 1000 },
      render_index: 0,
    });

    if (shot.narration) {
      const narrationUs = us(shot.narration_duration_s ?? (await probe(tools.ffprobe, shot.narration)).duration_s);
      const audioName = `narration-${n}${path.extname(shot.narration) || '.wav'}`;
      zipEntries.push({ source: shot.narration, entry: `${MEDIA_DIR}/${audioName}` });
      const id = hexId();
      content.materials.audios.push({
        app_id: 0,
        category_id: '',
        category_name: 'local',
        check_flag: 3,
        copyright_limit_type: 'none',
        duration: narrationUs,
        effect_id: '',
        formula_id: '',
        id,
        local_material_id: id,
        music_id: id,
        name: audioName,
        path: `${DRAFT_PATH_PLACEHOLDER}/${MEDIA_DIR}/${audioName}`,
        source_platform: 0,
        type: 'extract_music',
        wave_points: [],
      });
      const audioSpeed = speedMaterial(1);
      content.materials.speeds.push(audioSpeed);
      const span: Timerange = { start: 0, duration: Math.min(narrationUs, target.duration) };
      audioSegments.push({
        ...segmentCommon(id, { start: target.start, duration: span.duration }),
        source_timerange: span,
        speed: 1,
        volume: 1,
        extra_material_refs: [audioSpeed.id],
        is_tone_modify: false,
        clip: null,
        hdr_settings: null,
        render_index: 0,
      });
    }
  }

  for (const line of input.subtitles) {
    const id = hexId();
    content.materials.texts.push(textMaterial(id, line.text));
    textSegments.push({
      ...segmentCommon(id, { start: us(line.start_s), duration: us(line.end_s) - us(line.start_s) }),
      source_timerange: null,
      speed: 1,
      volume: 1,
      extra_material_refs: [],
      is_tone_modify: false,
      clip: { alpha: 1, flip: { horizontal: false, vertical: false }, rotation: 0, scale: { x: 1, y: 1 }, transform: { x: 0, y: -0.8 } },
      uniform_scale: { on: true, value: 1 },
      render_index: 15000,
    });
  }

  content.duration = Math.max(at, ...textSegments.map((s) => {
    const t = (s as { target_timerange: Timerange }).target_timerange;
    return t.start + t.duration;
  }));
  content.tracks.push(track('video', videoSegments));
  if (audioSegments.length) content.tracks.push(track('audio', audioSegments));
  if (textSegments.length) content.tracks.push(track('text', textSegments));

  const zip = new yazl.ZipFile();
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  zip.addBuffer(json(content), `${folder}/draft_content.json`);
  zip.addBuffer(json(metaInfo(draftId, content.duration, folder)), `${folder}/draft_meta_info.json`);
  // Media is already compressed: store it, do not deflate it again.
  for (const f of zipEntries) zip.addFile(f.source, `${folder}/${f.entry}`, { compress: false });
  zip.end();
  const tmp = path.join(path.dirname(input.out), `.${path.basename(input.out)}.${randomBytes(6).toString('hex')}.partial`);
  try {
    await pipeline(zip.outputStream, createWriteStream(tmp));
    await rename(tmp, input.out);
  } finally {
    await rm(tmp, { force: true });
  }
  return {
    out: input.out,
    draft_id: draftId,
    folder,
    duration_us: content.duration,
    files: ['draft_content.json', 'draft_meta_info.json', ...zipEntries.map((f) => f.entry)].map((f) => `${folder}/${f}`),
  };
}

function safeFolderName(name: string): string {
  // Windows forbids these in folder names, and 剪映 is mostly a Windows program.
  const cleaned = name.replace(/[<>:"/\\|?*\u0000-\u001f]+/g, '_').replace(/[. ]+$/, '').trim();
  return cleaned || 'AI Story';
}

function speedMaterial(speed: number) {
  return { curve_speed: null, id: hexId(), mode: 0, speed, type: 'speed' };
}

function segmentCommon(materialId: string, target: Timerange) {
  return {
    enable_adjust: true,
    enable_color_correct_adjust: false,
    enable_color_curves: true,
    enable_color_match_adjust: false,
    enable_color_wheels: true,
    enable_lut: true,
    enable_smart_color_adjust: false,
    last_nonzero_volume: 1,
    reverse: false,
    track_attribute: 0,
    track_render_index: 0,
    visible: true,
    id: hexId(),
    material_id: materialId,
    target_timerange: target,
    common_keyframes: [],
    keyframe_refs: [],
  };
}

function textMaterial(id: string, text: string) {
  const content = {
    styles: [
      {
        fill: { alpha: 1, content: { render_type: 'solid', solid: { alpha: 1, color: [1, 1, 1] } } },
        // Ranges count code points (as the editor and pyJianYingDraft's len() do), not UTF-16 units.
        range: [0, [...text].length],
        size: 8,
        bold: false,
        italic: false,
        underline: false,
        strokes: [],
      },
    ],
    text,
  };
  return {
    id,
    content: JSON.stringify(content),
    typesetting: 0,
    alignment: 1,
    letter_spacing: 0,
    line_spacing: 0.02,
    line_feed: 1,
    line_max_width: 0.82,
    force_apply_line_max_width: false,
    check_flag: 7,
    type: 'subtitle',
    global_alpha: 1,
  };
}

function track(type: 'video' | 'audio' | 'text', segments: object[]) {
  return { attribute: 0, flag: 0, id: hexId(), is_default_name: true, name: '', segments, type };
}

const MATERIAL_KINDS = [
  'ai_translates', 'audio_balances', 'audio_effects', 'audio_fades', 'audio_track_indexes', 'audios', 'beats', 'canvases',
  'chromas', 'color_curves', 'digital_humans', 'drafts', 'effects', 'flowers', 'green_screens', 'handwrites', 'hsl', 'images',
  'log_color_wheels', 'loudnesses', 'manual_deformations', 'masks', 'material_animations', 'material_colors',
  'multi_language_refs', 'placeholders', 'plugin_effects', 'primary_color_wheels', 'realtime_denoises', 'shapes',
  'smart_crops', 'smart_relights', 'sound_channel_mappings', 'speeds', 'stickers', 'tail_leaders', 'text_templates', 'texts',
  'time_marks', 'transitions', 'video_effects', 'video_trackings', 'videos', 'vocal_beautifys', 'vocal_separations',
] as const;

function emptyDraftContent(input: JianyingDraftInput, draftId: string) {
  const platform = { app_id: 3704, app_source: 'lv', app_version: APP_VERSION, os: 'windows' };
  const now = Date.now() * 1000;
  return {
    canvas_config: { height: input.height, ratio: 'original', width: input.width },
    color_space: 0,
    config: {
      adjust_max_index: 1, attachment_info: [], combination_max_index: 1, export_range: null, extract_audio_last_index: 1,
      lyrics_recognition_id: '', lyrics_sync: true, lyrics_taskinfo: [], maintrack_adsorb: true, material_save_mode: 0,
      multi_language_current: 'none', multi_language_list: [], multi_language_main: 'none', multi_language_mode: 'none',
      original_sound_last_index: 1, record_audio_last_index: 1, sticker_max_index: 1, subtitle_keywords_config: null,
      subtitle_recognition_id: '', subtitle_sync: true, subtitle_taskinfo: [], system_font_list: [], video_mute: false,
      zoom_info_params: null,
    },
    cover: null,
    create_time: now,
    duration: 0,
    extra_info: null,
    fps: input.fps,
    free_render_index_mode_on: false,
    group_container: null,
    id: draftId,
    keyframe_graph_list: [],
    keyframes: { adjusts: [], audios: [], effects: [], filters: [], handwrites: [], stickers: [], texts: [], videos: [] },
    last_modified_platform: platform,
    platform,
    materials: Object.fromEntries(MATERIAL_KINDS.map((k) => [k, [] as object[]])) as Record<(typeof MATERIAL_KINDS)[number], object[]>,
    mutable_config: null,
    name: input.name,
    new_version: '110.0.0',
    relationships: [],
    render_index_track_mode_on: false,
    retouch_cover: null,
    source: 'default',
    static_cover_image_path: '',
    time_marks: null,
    tracks: [] as object[],
    update_time: now,
    version: 360000,
  };
}

function metaInfo(draftId: string, durationUs: number, folder: string) {
  const now = Date.now() * 1000;
  return {
    cloud_package_completed_time: '',
    draft_cloud_capcut_purchase_info: '',
    draft_cloud_last_action_download: false,
    draft_cloud_materials: [],
    draft_cloud_purchase_info: '',
    draft_cloud_template_id: '',
    draft_cloud_tutorial_info: '',
    draft_cloud_videocut_purchase_info: '',
    draft_cover: '',
    draft_deeplink_url: '',
    draft_enterprise_info: { draft_enterprise_extra: '', draft_enterprise_id: '', draft_enterprise_name: '', enterprise_material: [] },
    // Absolute paths are the user's machine's; the editor fills them in when it scans its draft folder.
    draft_fold_path: '',
    draft_id: draftId,
    draft_is_ai_shorts: false,
    draft_is_article_video_draft: false,
    draft_is_from_deeplink: 'false',
    draft_is_invisible: false,
    draft_materials: [0, 1, 2, 3, 6, 7, 8].map((type) => ({ type, value: [] })),
    draft_materials_copied_info: [],
    draft_name: folder,
    draft_new_version: '',
    draft_removable_storage_device: '',
    draft_root_path: '',
    draft_segment_extra_info: [],
    draft_type: '',
    tm_draft_cloud_completed: '',
    tm_draft_cloud_modified: 0,
    tm_draft_create: now,
    tm_draft_modified: now,
    tm_draft_removed: 0,
    tm_duration: durationUs,
  };
}
