// The "New Training Run" form's protocol between the extension host (src/newRunPanel.ts) and the webview
// (webview/newRun/main.ts), declared once (STYLE.md, the GitLens pattern): requests carry an id and are answered
// once, or rejected on error and on timeout; notifications are one-way. The webview opens with a `ready` request
// that the host answers with a full snapshot; after that the host sends the whole view again whenever it changes
// (it is small), so a reloaded or re-shown webview never has to patch deltas.
//
// This module is pure TypeScript (no DOM, no Node, no vscode): both sides import it.

// ---------------------------------------------------------------------------------------------------------
// Message kinds, as data

/** A request of one side to the other, answered with `R` (or an error). */
export interface IpcRequest<P, R> {
  readonly kind: 'request';
  readonly method: string;
  /** Phantom fields: they carry the types, never a value. */
  readonly params?: P;
  readonly result?: R;
}

/** A one-way message. */
export interface IpcNotification<P> {
  readonly kind: 'notification';
  readonly method: string;
  readonly params?: P;
}

/** Declares a request type. */
export function ipcRequest<P, R>(method: string): IpcRequest<P, R> {
  return { kind: 'request', method };
}

/** Declares a notification type. */
export function ipcNotification<P>(method: string): IpcNotification<P> {
  return { kind: 'notification', method };
}

/** A request on the wire. */
export interface RequestMessage {
  type: 'request';
  id: number;
  method: string;
  params: unknown;
}

/** The answer to a request: its result, or an error with a code. */
export type ResponseMessage = { type: 'response'; id: number; ok: true; result: unknown } | { type: 'response'; id: number; ok: false; error: { message: string; code: string } };

/** A notification on the wire. */
export interface NotificationMessage {
  type: 'notification';
  method: string;
  params: unknown;
}

/** Anything either side posts. */
export type WireMessage = RequestMessage | ResponseMessage | NotificationMessage;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether a posted value is one of the protocol's messages (anything else is ignored, never trusted). */
export function isWireMessage(value: unknown): value is WireMessage {
  if (!isRecord(value)) return false;
  switch (value.type) {
    case 'request':
      return typeof value.id === 'number' && typeof value.method === 'string';
    case 'notification':
      return typeof value.method === 'string';
    case 'response':
      return typeof value.id === 'number' && typeof value.ok === 'boolean' && (value.ok === true || (isRecord(value.error) && typeof value.error.message === 'string'));
    default:
      return false;
  }
}

/** Why a request failed: the other side's error (`remote`), no answer in time (`timeout`), or the channel closed (`closed`). */
export type IpcErrorReason = 'remote' | 'timeout' | 'closed';

/** A failed request. */
export class IpcError extends Error {
  override readonly name = 'IpcError';
  constructor(
    readonly reason: IpcErrorReason,
    message: string,
    /** The other side's code for `remote` (for the form: a field's key, `upload`, `backend`, …). */
    readonly code = '',
  ) {
    super(message);
  }

  static is(error: unknown): error is IpcError {
    return error instanceof IpcError;
  }
}

/** Default wait for an answer. Starting a run waits for an upload; that request names its own, longer, timeout. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

type Handler = (params: unknown) => unknown;

/**
 * One side of the channel: sends requests and notifications through `post`, matches responses to requests by
 * id (each settles once: answered, failed, timed out, or closed), and dispatches incoming messages to the
 * handlers registered for their method. A request without a handler is answered with an error, so the other
 * side never waits for nothing.
 */
export class IpcEndpoint {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: IpcError) => void; timer: ReturnType<typeof setTimeout> }>();
  private readonly requestHandlers = new Map<string, Handler>();
  private readonly notificationHandlers = new Map<string, Handler>();
  private closed = false;

  constructor(private readonly post: (message: WireMessage) => void) {}

  /** Sends a request; rejects with an IpcError on the other side's error, after `timeoutMs`, or when closed. */
  request<P, R>(type: IpcRequest<P, R>, params: P, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<R> {
    if (this.closed) return Promise.reject(new IpcError('closed', `${type.method}: the channel is closed`));
    const id = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new IpcError('timeout', `${type.method}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: (value) => resolve(value as R), reject, timer });
      this.post({ type: 'request', id, method: type.method, params });
    });
  }

  /** Sends a notification (nothing comes back). */
  notify<P>(type: IpcNotification<P>, params: P): void {
    if (!this.closed) this.post({ type: 'notification', method: type.method, params });
  }

  /** Answers requests of this type; a thrown error (or rejection) goes back as the request's error. */
  onRequest<P, R>(type: IpcRequest<P, R>, handler: (params: P) => R | Promise<R>): void {
    this.requestHandlers.set(type.method, handler as Handler);
  }

  /** Handles notifications of this type. */
  onNotification<P>(type: IpcNotification<P>, handler: (params: P) => void): void {
    this.notificationHandlers.set(type.method, handler as Handler);
  }

  /** Feeds one posted message in; returns false for anything that is not a protocol message. */
  receive(message: unknown): boolean {
    if (this.closed || !isWireMessage(message)) return false;
    if (message.type === 'response') {
      const waiting = this.pending.get(message.id);
      if (waiting === undefined) return true; // answered after its timeout: nobody waits any more
      this.pending.delete(message.id);
      clearTimeout(waiting.timer);
      if (message.ok) waiting.resolve(message.result);
      else waiting.reject(new IpcError('remote', message.error.message, message.error.code));
      return true;
    }
    if (message.type === 'notification') {
      this.notificationHandlers.get(message.method)?.(message.params);
      return true;
    }
    void this.answer(message);
    return true;
  }

  /** Rejects every pending request and ignores whatever arrives later. */
  close(): void {
    this.closed = true;
    for (const [id, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      waiting.reject(new IpcError('closed', `request ${id}: the channel closed`));
    }
    this.pending.clear();
  }

  private async answer(message: RequestMessage): Promise<void> {
    const handler = this.requestHandlers.get(message.method);
    try {
      if (handler === undefined) throw new IpcError('remote', `no handler for ${message.method}`, 'unknown_method');
      const result = await handler(message.params);
      if (!this.closed) this.post({ type: 'response', id: message.id, ok: true, result: result ?? null });
    } catch (error) {
      const named = (error ?? {}) as { code?: unknown };
      const code = typeof named.code === 'string' ? named.code : '';
      const text = error instanceof Error ? error.message : String(error);
      if (!this.closed) this.post({ type: 'response', id: message.id, ok: false, error: { message: text, code } });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// The form's data

/** The hyper-parameter fields of the form, in the order shown (main settings, then "More settings"). */
export const MAIN_FIELDS = ['n_epochs', 'learning_rate', 'batch_size', 'max_seq_length'] as const;
/** The fields under "More settings". */
export const MORE_FIELDS = ['warmup_ratio', 'lr_scheduler', 'lora_r', 'lora_alpha', 'lora_dropout', 'lora_target_modules', 'checkpoints', 'eval_ratio', 'seed'] as const;

/** Every settings field's key (the hyper-parameters' own names, and `seed`). */
export type SettingKey = (typeof MAIN_FIELDS)[number] | (typeof MORE_FIELDS)[number] | 'training_type';

/** Every field the form can show an error on (a backend's 400 naming a `param` lands on one of them). */
export type FieldKey = SettingKey | 'name' | 'backend' | 'model' | 'gpus' | 'dataset';

/** The dataset the run trains on: a local file (uploaded at launch) or a file already on the backend (rerun). */
export type DatasetChoice = { kind: 'local'; path: string } | { kind: 'remote'; fileId: string; filename: string; examples?: number };

/**
 * What the user entered, as text (what the fields hold, valid or not): kept by the webview with `setState`, so
 * that a hidden or reloaded form comes back as it was.
 */
export interface FormValues {
  name: string;
  backend: string;
  model: string;
  /** A count of GPUs as text; `0` runs on the CPU. */
  gpus: string;
  dataset: DatasetChoice | null;
  /** Each setting as text; `lora_target_modules` comma-separated. */
  settings: Record<SettingKey, string>;
  /** Settings the user edited: they survive a change of model, the others take the new model's defaults. */
  touched: SettingKey[];
  moreOpen: boolean;
}

/** One option of a drop-down. */
export interface Choice {
  value: string;
  label: string;
  /** A second line: a model's size and memory, a GPU's memory. */
  detail?: string;
  disabled?: boolean;
}

/** One dataset finding the form lists (errors first), linking to its place (0-based line and column). */
export interface FindingView {
  line: number;
  column: number;
  code: string;
  severity: 'error' | 'warning';
  message: string;
}

/** The dataset's check, as the form shows it. */
export interface DatasetView {
  /** The file's name (for a remote file, its name on the backend). */
  label: string;
  state: 'checking' | 'ready' | 'failed' | 'remote';
  /** 0–1 while checking. */
  progress: number;
  /** Why the check failed (unreadable file). */
  failure?: string;
  examples?: number;
  errors?: number;
  warnings?: number;
  /** Tokens of the valid examples as rendered; trained tokens (assistant replies). */
  tokens?: number;
  trainedTokens?: number;
  /** Examples over the chosen maximum sequence length. */
  overLength?: number;
  /** True when the token counts come from a sample of the file (then they are estimates). */
  estimated?: boolean;
  /** Up to 100 findings, errors first. */
  findings: FindingView[];
  /** How many findings there are in all. */
  totalFindings: number;
}

/** The arithmetic of what launching will do, in lines for the summary box. */
export interface SummaryView {
  /** `label: value` pairs, already formatted and translated. */
  rows: { label: string; value: string }[];
}

/** Where launching stands. */
export interface LaunchView {
  phase: 'idle' | 'uploading' | 'creating' | 'done';
  /** 0–1 during the upload. */
  progress: number;
  /** The launch's error, for the form's top (field errors go to their fields). */
  error?: string;
}

/** Everything the webview shows, sent whole on every change. */
export interface ViewModel {
  /**
   * Bumped when the host changed the values itself (model defaults, prefill): the webview then takes them, keeping
   * what the user typed that the host had not seen (`valuesEdit`; webview/newRun/edits.ts).
   */
  valuesRevision: number;
  /** The webview's last edit (ValuesChangedNotification's `edit`) that the host has taken in; 0 before any. */
  valuesEdit: number;
  values: FormValues;
  backends: Choice[];
  models: Choice[];
  /** The chosen model's `training_type` options (`full` only where the model allows it). */
  trainingTypes: Choice[];
  compute: Choice[];
  /** Loading models/system of the chosen backend, or why that failed. */
  backendState: { loading: boolean; error?: string };
  /** Defaults of the chosen model, as text, shown beside each field. */
  defaults: Partial<Record<SettingKey, string>>;
  /** Errors per field (validation as the user types, and a backend's refusal). */
  fieldErrors: Partial<Record<FieldKey, string>>;
  dataset: DatasetView | null;
  summary: SummaryView;
  /** Whether "Start Training" may be pressed, and if not, why. */
  canStart: boolean;
  blockedReason?: string;
  launch: LaunchView;
  /** A rerun: the job it started from. */
  rerunOf?: string;
}

/** The first answer: the translated strings and the whole view. */
export interface Snapshot {
  strings: Record<StringKey, string>;
  view: ViewModel;
}

// ---------------------------------------------------------------------------------------------------------
// The messages

/** Webview → host, once loaded: the values it kept (`getState`), if any; answered with the full snapshot. */
export const ReadyRequest = ipcRequest<{ saved: FormValues | null }, Snapshot>('newRun/ready');
/**
 * Webview → host, as the user types: the values now; the host answers with a `view` notification. `edit` counts
 * the webview's edits, so that the view can say which the host has taken in; `revision` is the host's values
 * revision the webview showed (the host keeps its own changes made since).
 */
export const ValuesChangedNotification = ipcNotification<{ values: FormValues; edit: number; revision: number }>('newRun/valuesChanged');
/** Webview → host: "Choose File…" (the host opens the dialog; the choice arrives in the next view). */
export const ChooseDatasetRequest = ipcRequest<Record<string, never>, { chosen: boolean }>('newRun/chooseDataset');
/** Webview → host: open the dataset at a finding (0-based line and column). */
export const OpenFindingRequest = ipcRequest<{ line: number; column: number }, null>('newRun/openFinding');
/** Webview → host: Start Training. Resolves with the job's id once created; rejects with a code (a field, or `launch`). */
export const StartRequest = ipcRequest<{ values: FormValues }, { jobId: string }>('newRun/start');
/** Webview → host: cancel the upload in progress (nothing is kept). */
export const CancelUploadNotification = ipcNotification<null>('newRun/cancelUpload');
/** Webview → host: reload the backend's models and GPUs. */
export const RefreshBackendNotification = ipcNotification<null>('newRun/refreshBackend');
/** Host → webview: the whole view, after any change. */
export const ViewNotification = ipcNotification<{ view: ViewModel }>('newRun/view');

/** Starting a run waits for the upload and the job's creation: minutes for a big file. */
export const START_TIMEOUT_MS = 60 * 60_000;

// ---------------------------------------------------------------------------------------------------------
// The webview's strings: keys here, English and translations on the host side, sent in the snapshot.

/** The keys of every string the webview shows; the host sends their translations (src/newRunStrings.ts). */
export const STRING_KEYS = [
  'title',
  'rerunOf',
  'section.run',
  'section.data',
  'section.settings',
  'section.more',
  'section.summary',
  'field.name',
  'help.name',
  'field.task',
  'task.textGeneration',
  'field.backend',
  'help.backend',
  'field.model',
  'help.model',
  'field.training_type',
  'help.training_type',
  'field.gpus',
  'help.gpus',
  'field.dataset',
  'help.dataset',
  'action.chooseFile',
  'action.refresh',
  'action.start',
  'action.cancel',
  'field.n_epochs',
  'help.n_epochs',
  'field.learning_rate',
  'help.learning_rate',
  'field.batch_size',
  'help.batch_size',
  'field.max_seq_length',
  'help.max_seq_length',
  'field.warmup_ratio',
  'help.warmup_ratio',
  'field.lr_scheduler',
  'help.lr_scheduler',
  'field.lora_r',
  'help.lora_r',
  'field.lora_alpha',
  'help.lora_alpha',
  'field.lora_dropout',
  'help.lora_dropout',
  'field.lora_target_modules',
  'help.lora_target_modules',
  'field.checkpoints',
  'help.checkpoints',
  'field.eval_ratio',
  'help.eval_ratio',
  'field.seed',
  'help.seed',
  'default.is',
  'dataset.none',
  'dataset.checking',
  'dataset.remote',
  'dataset.stats',
  'dataset.estimated',
  'dataset.overLength',
  'dataset.errors',
  'dataset.warnings',
  'dataset.more',
  'dataset.lineColumn',
  'launch.uploading',
  'launch.creating',
  'launch.done',
  'loading',
] as const;

/** A key of the webview's string table. */
export type StringKey = (typeof STRING_KEYS)[number];

/** Fills `{0}`, `{1}`… (as `vscode.l10n.t` does), for strings the webview formats itself. */
export function format(template: string, ...args: (string | number)[]): string {
  return template.replace(/\{(\d+)\}/g, (match, index: string) => {
    const value = args[Number(index)];
    return value === undefined ? match : String(value);
  });
}
