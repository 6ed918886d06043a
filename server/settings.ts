/**
 * The `finetune.dataset` settings as the language server uses them. Clients send them in different ways, all
 * of which end up here: `workspace/configuration` (pull, VS Code), the `settings` of
 * `workspace/didChangeConfiguration` (push, some editors), or `initializationOptions` (editors without either).
 */

/** The section the server asks for with `workspace/configuration`. */
export const SETTINGS_SECTION = 'finetune.dataset';

/** What the dataset checks are configured with. */
export interface ServerSettings {
  /** Conversations longer than this many tokens are `too-long`. */
  maxSequenceLength: number;
  /** Most diagnostics published per file (plus one summary diagnostic). */
  maxDiagnostics: number;
  /** Whether tokens are counted (for `too-long`, hover and statistics). */
  countTokens: boolean;
}

/** The defaults declared in package.json. */
export const DEFAULT_SETTINGS: Readonly<ServerSettings> = Object.freeze({
  maxSequenceLength: 4096,
  maxDiagnostics: 1000,
  countTokens: true,
});

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function positiveInteger(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 ? value : fallback;
}

/**
 * Reads settings from whatever a client sent: the section itself (`{maxSequenceLength, …}`), or an object that
 * holds it under `finetune.dataset`, `finetune: {dataset}` or `dataset`. Values of the wrong type or out of
 * range fall back to `base` (hand-edited settings files are common in editors without a schema).
 */
export function readSettings(value: unknown, base: Readonly<ServerSettings> = DEFAULT_SETTINGS): ServerSettings {
  let section: unknown = value;
  if (isRecord(value)) {
    if (isRecord(value[SETTINGS_SECTION])) section = value[SETTINGS_SECTION];
    else if (isRecord(value.finetune) && isRecord(value.finetune.dataset)) section = value.finetune.dataset;
    else if (isRecord(value.dataset)) section = value.dataset;
  }
  if (!isRecord(section)) return { ...base };
  return {
    maxSequenceLength: positiveInteger(section.maxSequenceLength, base.maxSequenceLength),
    maxDiagnostics: positiveInteger(section.maxDiagnostics, base.maxDiagnostics),
    countTokens: typeof section.countTokens === 'boolean' ? section.countTokens : base.countTokens,
  };
}

/** Whether `value` holds any dataset setting (to tell a push of settings from an empty "please pull" ping). */
export function hasSettings(value: unknown): boolean {
  const read = readSettings(value, { maxSequenceLength: -1, maxDiagnostics: -1, countTokens: undefined as unknown as boolean });
  return read.maxSequenceLength !== -1 || read.maxDiagnostics !== -1 || read.countTokens !== undefined;
}

/** What the configuration service needs from the connection. */
export interface ConfigurationClient {
  /** `workspace/configuration` for the section. */
  pull(): Promise<unknown>;
  /** Dynamic registration of `workspace/didChangeConfiguration` for the section. */
  register(): Promise<void>;
  error(message: string): void;
}

/** What the client said about configuration at `initialize`. */
export interface ConfigurationFeatures {
  /** It answers `workspace/configuration`. */
  pull: boolean;
  /** It takes a dynamic registration of `workspace/didChangeConfiguration`. */
  register: boolean;
}

/** How long to wait for the first `workspace/configuration` answer before counting tokens with what we have. */
const FIRST_ANSWER_TIMEOUT_MS = 5000;

/**
 * Keeps the server's settings in step with the client, whichever way it sends them (see the module comment).
 * server.ts calls it at `initialize`, `initialized` and `workspace/didChangeConfiguration`; it calls `apply`
 * with every new value, `final` once the values are the client's (not defaults while they are asked for).
 */
export class ConfigurationService {
  private settings: ServerSettings = { ...DEFAULT_SETTINGS };
  private features: ConfigurationFeatures = { pull: false, register: false };

  constructor(
    private readonly client: ConfigurationClient,
    private readonly apply: (settings: ServerSettings, final: boolean) => void,
  ) {}

  /** `initialize`: settings from `initializationOptions`, final unless they will be asked for. */
  initialize(features: ConfigurationFeatures, initializationOptions: unknown): void {
    this.features = features;
    this.set(readSettings(initializationOptions, this.settings), !features.pull);
  }

  /** `initialized`: registers for changes and asks for the settings once. */
  initialized(): void {
    if (this.features.register) this.client.register().catch((error: unknown) => this.fail('registering for configuration changes', error));
    if (!this.features.pull) return;
    let answered = false;
    void this.pull().then(() => (answered = true));
    // A client that never answers must not keep token counting off for good.
    setTimeout(() => {
      if (!answered) this.set(this.settings, true);
    }, FIRST_ANSWER_TIMEOUT_MS).unref();
  }

  /** `workspace/didChangeConfiguration`: ask again, or take what was pushed. */
  changed(pushed: unknown): void {
    if (this.features.pull) void this.pull();
    else if (hasSettings(pushed)) this.set(readSettings(pushed, this.settings), true);
  }

  private async pull(): Promise<void> {
    try {
      this.set(readSettings(await this.client.pull(), this.settings), true);
    } catch (error) {
      this.fail('workspace/configuration', error);
      // Go on with what we have rather than never count tokens.
      this.set(this.settings, true);
    }
  }

  private set(settings: ServerSettings, final: boolean): void {
    this.settings = settings;
    this.apply(settings, final);
  }

  private fail(what: string, error: unknown): void {
    this.client.error(`${what} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}
