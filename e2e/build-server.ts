// Playwright's global setup: the specs run the server as `npm start` does, built, so it is built
// here from the source under test (half a second) before any studio starts.
import { execFileSync } from 'node:child_process';
import path from 'node:path';

export default function buildServer() {
  execFileSync(process.execPath, [path.resolve(import.meta.dirname, '../apps/server/build.mjs')], { stdio: 'inherit' });
}
