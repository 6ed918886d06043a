// The command line of `finetune-studio`: what each subcommand accepts, parsed into typed options. Parsing never
// exits or prints; a mistake is a UsageError that main.ts reports with exit code 2.

/** A mistake on the command line: an unknown option, a missing or bad value, no file. Exit code 2. */
export class UsageError extends Error {
  readonly reason = 'usage';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }

  static is(error: unknown): error is UsageError {
    return error instanceof UsageError;
  }
}

/** Output formats of `validate`. */
export type OutputFormat = 'text' | 'json';

/** The options of `finetune-studio validate`. */
export interface ValidateOptions {
  /** Files to check, in order; `-` is standard input. */
  files: string[];
  format: OutputFormat;
  /** Conversations longer than this many tokens get `too-long` (default 4096, as the editor's setting). */
  maxTokens: number;
  /** Whether tokens are counted (`--no-tokens` turns it off, and with it `too-long`). */
  countTokens: boolean;
  /** Most diagnostics printed per file; the counts still include all of them. Infinity: no cap. */
  maxDiagnostics: number;
  /**
   * Worker threads that count tokens; 0 counts on the main thread. Undefined: chosen from the machine's cores
   * and the size of the input.
   */
  jobs: number | undefined;
  /** A tokenizer.json (gzipped or not) to count with instead of the bundled Qwen2.5 one. */
  tokenizer: string | undefined;
  help: boolean;
}

/** The default maximum sequence length, the same as the editor's `finetune.dataset.maxSequenceLength`. */
export const DEFAULT_MAX_TOKENS = 4096;

/** Help text of `finetune-studio validate`. */
export const VALIDATE_HELP = `Usage: finetune-studio validate FILE... [options]

Checks JSON Lines chat datasets (one {"messages": [...]} example per line) with the same rules as the editor,
and prints every finding. FILE may be - for standard input.

Options:
  --format text|json      text (default): "path:line:col: severity code: message" lines and a summary per
                          file; json: one object {"files": [{"path", "examples", "errors", "warnings",
                          "diagnostics": [{"line", "column", "endLine", "endColumn", "code", "severity",
                          "message"}]}]}, lines and columns 1-based, columns in UTF-16 code units
  --max-tokens N          maximum sequence length in tokens (default ${DEFAULT_MAX_TOKENS}); longer conversations,
                          rendered with the Qwen2.5 chat template, are reported as too-long
  --no-tokens             do not count tokens (no too-long findings; much faster)
  --max-diagnostics N     print at most N findings per file (the counts still include all)
  --jobs N                worker threads for token counting (0: count on the main thread; default: one per
                          core for large inputs)
  --tokenizer FILE        count with this tokenizer.json (gzipped or not) instead of the bundled Qwen2.5 one
  -h, --help              show this help

Exit status: 0 when no file has an error, 1 when one has, 2 on a usage or read error (70: an internal error).
`;

/** Help text of `finetune-studio backend`: kept with the backend's option parser, which dist/backend.js shares. */
export { BACKEND_HELP } from '../backend/options';

/** Help text of the command. */
export const MAIN_HELP = `Usage: finetune-studio <command> [options]

Commands:
  validate FILE...   check chat datasets (JSON Lines) and print their findings; see validate --help
  lsp --stdio        run the dataset language server for any editor with an LSP client
                     (--node-ipc and --socket=PORT work as well)
  backend            run the training backend (HTTP API, job queue, engines); see backend --help

Options:
  -h, --help         show this help
  -v, --version      print the version
`;

function positiveInteger(option: string, value: string, allowZero = false): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || (n === 0 && !allowZero)) {
    throw new UsageError(`${option} expects a ${allowZero ? 'non-negative' : 'positive'} whole number, got '${value}'.`);
  }
  return n;
}

/** Parses the arguments after `validate`. */
export function parseValidateArgs(args: readonly string[]): ValidateOptions {
  const options: ValidateOptions = {
    files: [],
    format: 'text',
    maxTokens: DEFAULT_MAX_TOKENS,
    countTokens: true,
    maxDiagnostics: Infinity,
    jobs: undefined,
    tokenizer: undefined,
    help: false,
  };
  let onlyFiles = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (onlyFiles || arg === '-' || !arg.startsWith('-')) {
      options.files.push(arg);
      continue;
    }
    if (arg === '--') {
      onlyFiles = true;
      continue;
    }
    // Both `--name value` and `--name=value`.
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = args[i + 1];
      if (next === undefined) throw new UsageError(`${name} needs a value.`);
      i++;
      return next;
    };
    const noValue = (): void => {
      if (inline !== undefined) throw new UsageError(`${name} takes no value, got '${arg}'.`);
    };
    switch (name) {
      case '--format': {
        const format = value();
        if (format !== 'text' && format !== 'json') throw new UsageError(`--format expects text or json, got '${format}'.`);
        options.format = format;
        break;
      }
      case '--max-tokens':
        options.maxTokens = positiveInteger(name, value());
        break;
      case '--no-tokens':
        noValue();
        options.countTokens = false;
        break;
      case '--max-diagnostics':
        options.maxDiagnostics = positiveInteger(name, value());
        break;
      case '--jobs':
        options.jobs = positiveInteger(name, value(), true);
        break;
      case '--tokenizer':
        options.tokenizer = value();
        break;
      case '-h':
      case '--help':
        noValue();
        options.help = true;
        break;
      default:
        throw new UsageError(`unknown option '${arg}'.`);
    }
  }
  if (!options.help && options.files.length === 0) throw new UsageError('no file to validate; expected at least one FILE (or - for standard input).');
  return options;
}
