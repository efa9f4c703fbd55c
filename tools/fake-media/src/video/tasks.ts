import { randomBytes, randomUUID } from 'node:crypto';
import type { ClipMaker } from './clip-maker.ts';

export interface VideoKnobs {
  /** Delay before every API answer (not file downloads). */
  latencyMs: number;
  /** How long a new task stays queued (`submitted` / `queued`). */
  queuedMs: number;
  /** How long it then runs (`processing` / `running`). */
  runningMs: number;
  /** The next N tasks created fail mid-task (after their queued time), with `failMessage`. */
  failTasks: number;
  failMessage: string;
  /** The next N create requests answer 429 with `Retry-After: retryAfterS`. */
  createRateLimitTimes: number;
  retryAfterS: number;
  /** The next N create requests answer 500. */
  createServerErrorTimes: number;
  /** The next N create requests get a 200 HTML page (a gateway or captive portal in the way). */
  htmlAnswerTimes: number;
  /** A result URL stops working this long after it was first handed out (vendors sign them). */
  urlTtlMs: number;
  /** Size of the clips handed out when the request does not imply one (Kling follows its image). */
  clipWidth: number;
  clipHeight: number;
  fps: number;
}

export const DEFAULT_VIDEO_KNOBS: VideoKnobs = {
  latencyMs: 0,
  queuedMs: 60,
  runningMs: 120,
  failTasks: 0,
  failMessage: 'Failure to pass the risk control system',
  createRateLimitTimes: 0,
  retryAfterS: 1,
  createServerErrorTimes: 0,
  htmlAnswerTimes: 0,
  urlTtlMs: 10 * 60_000,
  clipWidth: 360,
  clipHeight: 640,
  fps: 24,
};

export type TaskPhase = 'queued' | 'running' | 'succeeded' | 'failed';

export interface FakeVideoTask {
  id: string;
  vendor: 'kling' | 'seedance';
  model: string;
  prompt: string;
  duration_s: number;
  width: number;
  height: number;
  createdAt: number;
  queuedMs: number;
  runningMs: number;
  /** Set when the task was created to fail mid-task. */
  failMessage?: string;
  /** The request body as received. */
  body: Record<string, unknown>;
  /** Kling: `camera_control` as received (null when absent). */
  camera_control?: unknown;
  /** Seedance: the `--` parameters parsed from the text content. */
  params?: Record<string, string>;
  /** Seedance: the roles of the image contents (`first_frame`, …). */
  imageRoles?: string[];
  videoUrl?: string;
}

export interface VideoStats {
  /** Every HTTP request, API and file downloads alike. */
  requests: number;
  creates: number;
  polls: number;
  downloads: number;
  byStatus: Record<number, number>;
}

interface ServedFile {
  clip: Promise<Buffer>;
  expiresAt: number;
}

/** The vendor-neutral part of the simulator: task timing, failure knobs and expiring result files. */
export class TaskBook {
  readonly tasks = new Map<string, FakeVideoTask>();
  readonly stats: VideoStats = { requests: 0, creates: 0, polls: 0, downloads: 0, byStatus: {} };
  private readonly files = new Map<string, ServedFile>();
  baseUrl = '';

  constructor(
    readonly knobs: VideoKnobs,
    private readonly clips: ClipMaker,
  ) {}

  /** A create-time failure to answer instead of creating, if a knob asks for one. */
  takeCreateFailure(): { status: 429; retryAfterS: number } | { status: 500 } | undefined {
    if (this.knobs.createRateLimitTimes > 0) {
      this.knobs.createRateLimitTimes--;
      return { status: 429, retryAfterS: this.knobs.retryAfterS };
    }
    if (this.knobs.createServerErrorTimes > 0) {
      this.knobs.createServerErrorTimes--;
      return { status: 500 };
    }
    return undefined;
  }

  takeHtmlAnswer(): boolean {
    if (this.knobs.htmlAnswerTimes <= 0) return false;
    this.knobs.htmlAnswerTimes--;
    return true;
  }

  create(init: Pick<FakeVideoTask, 'vendor' | 'model' | 'prompt' | 'duration_s' | 'width' | 'height' | 'body'> & Partial<FakeVideoTask>, id: string = randomUUID()): FakeVideoTask {
    const failing = this.knobs.failTasks > 0;
    if (failing) this.knobs.failTasks--;
    const task: FakeVideoTask = {
      ...init,
      id,
      createdAt: Date.now(),
      queuedMs: this.knobs.queuedMs,
      runningMs: this.knobs.runningMs,
      failMessage: failing ? this.knobs.failMessage : undefined,
    };
    this.tasks.set(id, task);
    this.stats.creates++;
    // Start rendering now so that the first successful poll does not wait for ffmpeg.
    void this.clipFor(task).catch(() => {});
    return task;
  }

  /** Failing tasks fail once queued, half-way through what would have been their run. */
  phase(task: FakeVideoTask, now = Date.now()): TaskPhase {
    const elapsed = now - task.createdAt;
    if (elapsed < task.queuedMs) return 'queued';
    if (task.failMessage) return elapsed < task.queuedMs + task.runningMs / 2 ? 'running' : 'failed';
    return elapsed < task.queuedMs + task.runningMs ? 'running' : 'succeeded';
  }

  /** The result URL, issued (and its TTL started) the first time a successful task is read. */
  async videoUrl(task: FakeVideoTask): Promise<string> {
    if (!task.videoUrl) {
      // Made before the URL is handed out, so a client fetching it at once never waits on a render.
      const clip = this.clipFor(task);
      await clip;
      const token = randomBytes(12).toString('hex');
      this.files.set(token, { clip, expiresAt: Date.now() + this.knobs.urlTtlMs });
      // Signed-URL style: the expiry is in the query, as TOS/S3 and Kling's CDN links carry it.
      task.videoUrl = `${this.baseUrl}/files/${token}.mp4?x-expires=${Math.floor((Date.now() + this.knobs.urlTtlMs) / 1000)}`;
    }
    return task.videoUrl;
  }

  /** The file behind a result URL, `expired`, or undefined when no such file was ever issued. */
  async file(token: string): Promise<Buffer | 'expired' | undefined> {
    const file = this.files.get(token);
    if (!file) return undefined;
    if (Date.now() >= file.expiresAt) return 'expired';
    return file.clip;
  }

  private clipFor(task: FakeVideoTask): Promise<Buffer> {
    return this.clips.clip({ duration_s: task.duration_s, width: task.width, height: task.height, fps: this.knobs.fps });
  }
}
