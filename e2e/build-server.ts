// Playwright's global setup: the specs run the server as `npm start` does, built, so the build is
// brought up to date with the source under test (half a second; kept when nothing changed) before
// any studio starts.
import { execFileSync } from 'node:child_process';
import path from 'node:path';

export default function buildServer() {
  execFileSync(process.execPath, [path.resolve(import.meta.dirname, '../apps/server/build.mjs')], { stdio: 'inherit' });
}
