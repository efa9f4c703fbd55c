import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileTypeFromBuffer } from 'file-type';
import type { MediaRow } from '../db/schema.ts';
import type { MediaRepository } from './repository.ts';

export type MediaKind = 'image' | 'audio' | 'video' | 'subtitle' | 'archive';

export interface MediaMeta {
  kind: MediaKind;
  /** Taken from the bytes when they say (file-type); given for text formats that have no signature. */
  mime?: string;
  width?: number | null;
  height?: number | null;
  durationS?: number | null;
  source?: string;
  createdBy?: string | null;
}

const EXTENSIONS: Record<string, string> = {
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
  'audio/wav': 'wav',
  'audio/x-wav': 'wav',
  'audio/mpeg': 'mp3',
  'audio/mp4': 'm4a',
  'audio/aac': 'aac',
  'video/mp4': 'mp4',
  'application/zip': 'zip',
  'application/x-subrip': 'srt',
  'text/x-ssa': 'ass',
};

/**
 * The media store (DESIGN §9): files named by their sha256 under DATA_DIR/media, written to a temp
 * file and renamed (a crash never leaves half a file under a real name); one `media` row per use, so
 * the same bytes in two projects are stored once and each project's access rules still hold.
 */
export class MediaStore {
  constructor(
    readonly root: string,
    private readonly repo: MediaRepository,
  ) {}

  async put(projectId: string, bytes: Buffer, meta: MediaMeta): Promise<MediaRow> {
    const detected = await fileTypeFromBuffer(bytes);
    const mime = canonicalMime(detected?.mime ?? meta.mime ?? 'application/octet-stream');
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const relative = this.relativePath(sha256, mime);
    const file = path.join(this.root, relative);
    if (!(await exists(file))) {
      await mkdir(path.dirname(file), { recursive: true });
      const tmp = `${file}.${randomBytes(6).toString('hex')}.part`;
      try {
        await writeFile(tmp, bytes);
        await rename(tmp, file);
      } catch (err) {
        await unlink(tmp).catch(() => {});
        throw err;
      }
    }
    return this.repo.insert({
      projectId,
      kind: meta.kind,
      mime,
      bytes: bytes.length,
      sha256,
      width: meta.width ?? null,
      height: meta.height ?? null,
      durationS: meta.durationS ?? null,
      source: meta.source ?? 'generated',
      createdBy: meta.createdBy ?? null,
    });
  }

  find = (id: string) => this.repo.find(id);

  /**
   * Removes rows, and the files no row refers to any more (content-addressed: the same bytes may be
   * another row's, in this project or another). Answers what was freed.
   */
  async remove(rows: MediaRow[]): Promise<{ removedRows: number; removedFiles: number; freedBytes: number }> {
    const orphaned = await this.repo.deleteRows(rows.map((r) => r.id));
    let freedBytes = 0;
    for (const f of orphaned) {
      const file = path.join(this.root, this.relativePath(f.sha256, f.mime));
      const size = await stat(file).then((s) => s.size, () => 0);
      await unlink(file).catch(() => {});
      freedBytes += size;
    }
    return { removedRows: rows.length, removedFiles: orphaned.length, freedBytes };
  }

  /** Where a row's file lives, relative to the store's root (never outside it: the name is a hash). */
  relativePath(sha256: string, mime: string) {
    return path.join(sha256.slice(0, 2), `${sha256}.${EXTENSIONS[mime] ?? 'bin'}`);
  }

  fileOf = (row: MediaRow) => path.join(this.root, this.relativePath(row.sha256, row.mime));
  urlOf = (id: string) => `/api/v1/media/${id}`;
}

/** file-type says `audio/x-m4a` for AAC in MP4; browsers and players know the registered `audio/mp4`. */
const canonicalMime = (mime: string) => (mime === 'audio/x-m4a' ? 'audio/mp4' : mime);

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );
