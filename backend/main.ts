// The backend's process entry, bundled to dist/backend.js: the same command as `finetune-studio backend`
// (backend/app.ts's runBackend). Kept apart from app.ts so that bundling the command into dist/cli.js never
// runs this entry's start-up.
import { runBackend } from './app';

runBackend(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`finetune-studio backend: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 70;
  },
);
