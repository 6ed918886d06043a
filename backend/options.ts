// The command line of `finetune-studio backend` (and of dist/backend.js, which takes the same options): parsed
// into typed options without side effects. A mistake is an OptionsError, reported with exit code 2.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** A mistake on the command line or in the API-keys file. */
export class OptionsError extends Error {
  readonly reason = 'usage';
  constructor(message: string) {
    super(message);
    this.name = 'OptionsError';
  }

  static is(e: unknown): e is OptionsError {
    return e instanceof OptionsError;
  }
}

/** The backend's default port. */
export const DEFAULT_PORT = 8742;
/** The default upload limit: 2 GiB. */
export const DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024 ** 3;

/** The options of the backend command. */
export interface BackendOptions {
  host: string;
  port: number;
  /** Absolute path of the data folder. */
  dataDir: string;
  /** `--api-key`: the one key accepted. */
  apiKey: string | undefined;
  /** `--api-keys-file`: a file of keys, one a line. */
  apiKeysFile: string | undefined;
  /** Concurrent jobs; undefined: the GPUs found, or one CPU slot. */
  gpus: number | undefined;
  maxUploadBytes: number;
  /** Python for the torch engine. */
  python: string | undefined;
  /**
   * `--allow-downloads`: the torch engine may fetch a catalogue model that is not on this machine from the Hugging
   * Face hub. Without it the engine runs offline (HF_HUB_OFFLINE=1), whatever the environment says.
   */
  allowDownloads: boolean;
  /** Print one JSON line `{"url","key"}` on stdout once listening (for a parent process), nothing else there. */
  printJson: boolean;
  help: boolean;
}

/** The default data folder: `~/.finetune-studio/backend`. */
export function defaultDataDir(home = homedir()): string {
  return join(home, '.finetune-studio', 'backend');
}

/** Help text of `finetune-studio backend`. */
export const BACKEND_HELP = `Usage: finetune-studio backend [options]

Runs the training backend: an HTTP + WebSocket service shaped like OpenAI's fine-tuning API (files, jobs,
events, checkpoints, chat completions, models), with a job queue and the embedded CPU engine.

Options:
  --host HOST             address to bind (default 127.0.0.1: this machine only); anything else is reachable
                          from the network, so give every user a key
  --port N                port (default ${DEFAULT_PORT}; 0 picks a free one)
  --data DIR              data folder: uploaded files, jobs, checkpoints, models, the generated key
                          (default ~/.finetune-studio/backend)
  --api-key KEY           the API key clients must send (Authorization: Bearer KEY)
  --api-keys-file FILE    several keys, one a line (# starts a comment); each key sees only its own things
                          Without a key option the backend generates one, keeps it in DIR/api-key (mode 0600),
                          reuses it on the next start, and prints it.
  --gpus N                jobs that may run at once (default: the GPUs found, or 1 on a CPU-only machine)
  --max-upload-bytes N    largest dataset upload (default ${DEFAULT_MAX_UPLOAD_BYTES}, 2 GiB)
  --python PATH           Python for the torch engine (default python3): the one with torch, transformers and peft
  --allow-downloads       let the torch engine download a Qwen2.5 model that is not on this machine from the
                          Hugging Face hub into its cache (HF_HOME) when a job or a chat first needs it; without
                          it the engine never reaches the network, and missing models are listed unavailable
  --print-json            print one JSON line {"url": ..., "key": ...} on stdout once listening (for a parent
                          process); logs still go to stderr
  -h, --help              show this help
`;

function wholeNumber(option: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new OptionsError(`${option} expects a whole number from ${min} to ${max}, got '${value}'.`);
  return n;
}

/** Checks an API key's form: printable, no spaces, long enough not to be guessed. */
export function checkApiKey(key: string, where: string): string {
  if (!/^[\x21-\x7e]+$/.test(key)) throw new OptionsError(`${where}: an API key may hold only printable characters without spaces.`);
  if (key.length < 16) throw new OptionsError(`${where}: an API key must be at least 16 characters long (got ${key.length}).`);
  return key;
}

/** Parses the arguments after `backend`. Relative paths are resolved against `cwd`. */
export function parseBackendArgs(args: readonly string[], cwd = process.cwd(), home = homedir()): BackendOptions {
  const options: BackendOptions = {
    host: '127.0.0.1',
    port: DEFAULT_PORT,
    dataDir: defaultDataDir(home),
    apiKey: undefined,
    apiKeysFile: undefined,
    gpus: undefined,
    maxUploadBytes: DEFAULT_MAX_UPLOAD_BYTES,
    python: undefined,
    allowDownloads: false,
    printJson: false,
    help: false,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = args[i + 1];
      if (next === undefined) throw new OptionsError(`${name} needs a value.`);
      i++;
      return next;
    };
    const flag = (): true => {
      if (inline !== undefined) throw new OptionsError(`${name} takes no value, got '${arg}'.`);
      return true;
    };
    switch (name) {
      case '--host': {
        const host = value();
        if (host === '' || /\s/.test(host)) throw new OptionsError(`--host expects an address, got '${host}'.`);
        options.host = host;
        break;
      }
      case '--port':
        options.port = wholeNumber(name, value(), 0, 65535);
        break;
      case '--data':
        options.dataDir = resolve(cwd, value());
        break;
      case '--api-key':
        options.apiKey = checkApiKey(value(), '--api-key');
        break;
      case '--api-keys-file':
        options.apiKeysFile = resolve(cwd, value());
        break;
      case '--gpus':
        options.gpus = wholeNumber(name, value(), 1, 1024);
        break;
      case '--max-upload-bytes':
        options.maxUploadBytes = wholeNumber(name, value(), 1);
        break;
      case '--python': {
        const python = value();
        if (python.trim() === '') throw new OptionsError('--python expects the path or name of a Python, got an empty value.');
        options.python = python;
        break;
      }
      case '--allow-downloads':
        options.allowDownloads = flag();
        break;
      case '--print-json':
        options.printJson = flag();
        break;
      case '-h':
      case '--help':
        options.help = flag();
        break;
      default:
        throw new OptionsError(arg.startsWith('-') ? `unknown option '${arg}'.` : `unexpected argument '${arg}'; backend takes only options.`);
    }
  }
  if (options.apiKey !== undefined && options.apiKeysFile !== undefined) throw new OptionsError('give either --api-key or --api-keys-file, not both.');
  return options;
}

/** The keys of an API-keys file: one a line, `#` starts a comment, blank lines skipped. */
export function parseApiKeys(text: string, path: string): string[] {
  const keys: string[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line !== '') keys.push(checkApiKey(line, `${path}:${index + 1}`));
  });
  if (keys.length === 0) throw new OptionsError(`${path} holds no API key (one a line; # starts a comment).`);
  return keys;
}

/** Reads an API-keys file. */
export async function readApiKeysFile(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new OptionsError(`cannot read the API-keys file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}.`);
  }
  return parseApiKeys(text, path);
}
