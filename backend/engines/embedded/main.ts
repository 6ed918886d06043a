// The embedded engine process (issue 5), started by the backend as a child:
//   node dist/engine-embedded.js train   reads one `train` message on stdin, runs the job, exits
//   node dist/engine-embedded.js serve   answers `chat`/`chat_cancel` messages until stdin ends
// stdout carries only protocol messages, one JSON object a line (common/engineProtocol.ts); anything for a
// person who reads the process's output goes to stderr. Closing stdin or SIGTERM stops the work promptly.
import { createInterface } from 'node:readline';
import { ENGINE_PROTOCOL_VERSION, type EngineMessage, type ErrorMessage } from '../../../common/engineProtocol';
import type { EngineLog } from './data';
import { CancelledError, EngineError, oneLine } from './errors';
import { parseRequest, requestId } from './protocol';
import { ChatServer } from './serve';
import { runTraining } from './train';

/** Exit status after a SIGTERM (128 + 15, what a shell reports for a process it terminated). */
const EXIT_TERMINATED = 143;

function send(message: EngineMessage): void {
  process.stdout.write(JSON.stringify(message) + '\n');
}

const log: EngineLog = (level, message, data) => send(data === undefined ? { type: 'log', level, message } : { type: 'log', level, message, data });

function stack(e: unknown): string {
  return e instanceof Error ? (e.stack ?? e.message) : String(e);
}

/** Exits once what was written to stdout has been handed to the pipe. */
function exit(code: number): void {
  process.stdout.write('', () => process.exit(code));
}

function train(): void {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let stopping = false;
  let terminated = false;
  let running = false;
  const stop = (): void => {
    stopping = true;
    if (!running) exit(terminated ? EXIT_TERMINATED : 0);
  };
  lines.on('close', stop);
  process.on('SIGTERM', () => {
    terminated = true;
    stop();
  });
  lines.on('line', (line) => {
    if (running) {
      process.stderr.write('engine: ignored a line after the train message\n');
      return;
    }
    running = true;
    void (async () => {
      let code = 0;
      try {
        const request = parseRequest(line);
        if (request.type !== 'train') throw new EngineError('engine_error', `protocol: expected a train message in train mode, got ${request.type}`);
        await runTraining(request.spec, { send, log, cancelled: () => stopping });
      } catch (e) {
        if (CancelledError.is(e)) {
          process.stderr.write('engine: training stopped (cancelled)\n');
        } else {
          const error: ErrorMessage = EngineError.is(e)
            ? { type: 'error', code: e.code, message: e.message }
            : { type: 'error', code: 'engine_error', message: `the embedded engine failed: ${oneLine(e)}` };
          if (!EngineError.is(e)) process.stderr.write(`${stack(e)}\n`);
          send(error);
          code = 1;
        }
      }
      exit(terminated ? EXIT_TERMINATED : code);
    })();
  });
}

function serve(): void {
  const server = new ChatServer(send, log);
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  const shutdown = (code: number): void => {
    void server.stop().then(() => exit(code));
  };
  lines.on('line', (line) => {
    if (line.trim() === '') return;
    try {
      const request = parseRequest(line);
      if (request.type === 'train') throw new EngineError('engine_error', 'protocol: a train message in serve mode');
      server.handle(request);
    } catch (e) {
      const message = oneLine(e);
      const id = requestId(line);
      if (id !== undefined) send({ type: 'chat_error', id, code: 'engine_error', message });
      else log('error', message);
    }
  });
  lines.on('close', () => shutdown(0));
  process.on('SIGTERM', () => shutdown(EXIT_TERMINATED));
  send({ type: 'ready', protocol: ENGINE_PROTOCOL_VERSION });
}

process.stdout.on('error', () => {
  // The backend is gone (EPIPE): nobody is left to report to.
  process.exit(1);
});

const mode = process.argv[2];
if (mode === 'train') train();
else if (mode === 'serve') serve();
else {
  process.stderr.write(`usage: engine-embedded (train | serve)\n  got ${JSON.stringify(mode ?? '')}\n`);
  process.exit(2);
}
