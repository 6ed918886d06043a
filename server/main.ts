// The language server's entry point (bundled to dist/server.js, which VS Code's client starts with --stdio or
// --node-ipc). Everything else lives in server.ts, which the command line's `lsp --stdio` starts too.
import { startServer } from './server';

startServer();
