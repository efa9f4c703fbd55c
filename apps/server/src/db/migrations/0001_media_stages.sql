CREATE TABLE "media" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"project_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"mime" text NOT NULL,
	"bytes" integer NOT NULL,
	"sha256" text NOT NULL,
	"width" integer,
	"height" integer,
	"duration_s" double precision,
	"source" text DEFAULT 'generated' NOT NULL,
	"created_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "run_items" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"run_id" uuid NOT NULL,
	"seq" integer NOT NULL,
	"shot_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"media_id" uuid,
	"item" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "project_stages" ADD COLUMN "stale_shot_ids" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "projects" ADD COLUMN "aspect_ratio" text DEFAULT '9:16' NOT NULL;--> statement-breakpoint
ALTER TABLE "projects" ADD COLUMN "resolution" text DEFAULT '720p' NOT NULL;--> statement-breakpoint
ALTER TABLE "projects" ADD COLUMN "fps" integer DEFAULT 25 NOT NULL;--> statement-breakpoint
ALTER TABLE "projects" ADD COLUMN "min_shot_s" double precision DEFAULT 2 NOT NULL;--> statement-breakpoint
ALTER TABLE "projects" ADD COLUMN "max_shot_s" double precision DEFAULT 8 NOT NULL;--> statement-breakpoint
ALTER TABLE "storyboard_shots" ADD COLUMN "speaker" text;--> statement-breakpoint
ALTER TABLE "storyboard_shots" ADD COLUMN "duration_locked" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "media" ADD CONSTRAINT "media_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "run_items" ADD CONSTRAINT "run_items_run_id_stage_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."stage_runs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "media_project_idx" ON "media" USING btree ("project_id");--> statement-breakpoint
CREATE INDEX "media_sha_idx" ON "media" USING btree ("sha256");--> statement-breakpoint
CREATE UNIQUE INDEX "run_items_run_seq_uq" ON "run_items" USING btree ("run_id","seq");--> statement-breakpoint
CREATE INDEX "run_items_shot_idx" ON "run_items" USING btree ("shot_id");--> statement-breakpoint
-- Existing projects get the narration stage (between image and video), pending; later stages move down one.
UPDATE "project_stages" SET "position" = "position" + 1 WHERE "stage_type" IN ('video', 'export');--> statement-breakpoint
INSERT INTO "project_stages" ("project_id", "stage_type", "position")
SELECT "id", 'narration', 4 FROM "projects"
WHERE NOT EXISTS (SELECT 1 FROM "project_stages" s WHERE s."project_id" = "projects"."id" AND s."stage_type" = 'narration');
