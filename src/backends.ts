// The extension's backends (issue 6): `finetune.backends` from the settings, the embedded local backend when the
// user chose it, and the one `npm start` runs (FINETUNE_BACKEND_URL/KEY); API keys in SecretStorage. For each
// backend one BackendClient, and — once the runs view is shown or a command needs it — one connection that fills
// the RunsModel from `listJobs` and keeps it current with a JobEventStream following every job, and lists the
// backend's uploaded files (again after the form uploads one: the stream carries no file events). The local
// backend starts with `finetune.localBackend.*`; when those change while it runs it restarts at once if no job
// runs on it, else once its running jobs end (or now, when the user chooses: the jobs resume after the restart).
import * as vscode from 'vscode';
import type { FileObject, FineTuningJob } from '../common/api';
import { BackendClient } from './backendClient';
import { BackendError } from './backendErrors';
import { JobEventStream } from './backendEvents';
import type { BackendEntry, BackendRegistry } from './backendRegistry';
import { BACKENDS_SETTING, type Config } from './config';
import { LocalBackend, LocalBackendError, sameLaunch, type LocalBackendLaunch } from './localBackend';
import { isFinal, type RunsModel } from './runsModel';
/** globalState key: the user chose the local backend. */
const LOCAL_CHOSEN_KEY = 'finetune.localBackendChosen';
const ENV_URL = 'FINETUNE_BACKEND_URL';
const ENV_KEY = 'FINETUNE_BACKEND_KEY';
/** How many of an unfinished run's last events a connect reads for its latest message, and how many runs at once. */
const RECALLED_EVENTS = 20;
const RECALL_REQUESTS = 4;

/** One `finetune.backends` item as the settings hold it. */
export interface BackendSetting {
  name: string;
  url: string;
}

/** What the registry needs from the extension. */
export interface BackendsDeps {
  extension: vscode.ExtensionContext;
  log: vscode.LogOutputChannel;
  model: RunsModel;
  /** Called to show a backend's failure to the user (once per failure, see Training). */
  onFailure(backend: string, error: BackendError): void;
  /** The extension's settings. */
  config: Config;
}

/** What became of changed local-backend settings (for logs and tests). */
export type LocalSettingsOutcome = 'unchanged' | 'not-running' | 'restarted' | 'pending' | 'failed';

/** What one backend is, with where its key comes from. */
interface Entry extends BackendEntry {
  readonly kind: 'remote' | 'local' | 'env';
}

/** The live connection of one backend. */
interface Connection {
  readonly client: BackendClient;
  readonly stream: JobEventStream;
  readonly abort: AbortController;
}

/** Why a URL cannot be a backend's, or undefined when it can. */
export function urlProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return vscode.l10n.t('Not a URL: write it like http://gpu-box:8742');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return vscode.l10n.t('The URL must start with http:// or https://');
  if (url.search !== '' || url.hash !== '') return vscode.l10n.t('The URL must not have a query or fragment');
  return undefined;
}

/** Checks `finetune.backends` (`raw`, as the settings hold it), keeping well-formed items with unique names (the rest are logged). */
export function readBackendSettings(raw: unknown, log: vscode.LogOutputChannel): BackendSetting[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    log.warn(`${BACKENDS_SETTING} should be a list of {name, url}; ignored.`);
    return [];
  }
  const result: BackendSetting[] = [];
  raw.forEach((item: unknown, index) => {
    const value = item as { name?: unknown; url?: unknown } | null;
    const name = typeof value?.name === 'string' ? value.name.trim() : '';
    const url = typeof value?.url === 'string' ? value.url.trim() : '';
    if (name === '' || url === '' || urlProblem(url) !== undefined) {
      log.warn(`${BACKENDS_SETTING}[${index}] needs a non-empty "name" and an http(s) "url"; ignored.`);
      return;
    }
    if (result.some((r) => r.name === name)) {
      log.warn(`${BACKENDS_SETTING}[${index}]: the name "${name}" is used twice; only the first is kept.`);
      return;
    }
    result.push({ name, url: url.replace(/\/+$/, '') });
  });
  return result;
}

/** The registry (see the file comment). */
export class Backends implements BackendRegistry, vscode.Disposable {
  /** The local backend's entry name. */
  static readonly LOCAL_NAME = vscode.l10n.t('Local (this machine)');
  /** The `npm start` backend's entry name. */
  static readonly ENV_NAME = vscode.l10n.t('Local (npm start)');

  readonly onDidChange: vscode.Event<void>;
  readonly local: LocalBackend;
  private readonly changed = new vscode.EventEmitter<void>();
  private entryList: Entry[] = [];
  private readonly clients = new Map<string, { url: string; key: string; client: BackendClient }>();
  private readonly connections = new Map<string, Connection>();
  private readonly connecting = new Map<string, Promise<void>>();
  private readonly scope: vscode.Disposable;
  private readonly config: Config;
  /** The local backend's settings changed while jobs ran on it: restart once they end. */
  private restartPending = false;
  /** The settings being applied: one at a time, so that two jobs ending together restart it once. */
  private applying: Promise<LocalSettingsOutcome> | undefined;

  constructor(private readonly deps: BackendsDeps) {
    this.onDidChange = this.changed.event;
    const storage = deps.extension.globalStorageUri.fsPath;
    this.config = deps.config;
    this.local = new LocalBackend({
      script: vscode.Uri.joinPath(deps.extension.extensionUri, 'dist', 'backend.js').fsPath,
      dataDir: `${storage}/backend`,
      log: deps.log,
      launch: () => this.localLaunch(),
    });
    this.local.onUnexpectedExit((why) => {
      this.disconnect(Backends.LOCAL_NAME);
      const error = new BackendError('unreachable', vscode.l10n.t('The local backend stopped: {0}. Retry starts it again.', why));
      deps.model.setConnection(Backends.LOCAL_NAME, { kind: 'failed', reason: error.reason, message: error.message });
      deps.onFailure(Backends.LOCAL_NAME, error);
      this.changed.fire();
    });
    this.scope = vscode.Disposable.from(
      this.config.onDidChangeBackends(() => this.reload()),
      this.config.onDidChangeLocalBackend(() => void this.applyLocalSettings()),
      // Settings that changed while jobs ran apply once the last of them ends.
      new vscode.Disposable(
        deps.model.onFinished((finished) => {
          if (this.restartPending && finished.run.backend === Backends.LOCAL_NAME) void this.applyLocalSettings();
        }),
      ),
    );
    this.reload();
  }

  /** What the local backend is to be started with now. */
  private localLaunch(): LocalBackendLaunch {
    const settings = this.config.localBackend;
    return { python: settings.python, allowDownloads: settings.allowModelDownloads };
  }

  /**
   * Brings the running local backend in line with its settings: nothing when it is not running or already
   * matches; a restart when no job runs on it; else a notice that the settings apply once its running jobs end,
   * with "Restart Now" (after a warning: the running jobs are interrupted and resume from their last checkpoint).
   */
  applyLocalSettings(): Promise<LocalSettingsOutcome> {
    return this.oneAtATime(() => this.doApplyLocalSettings());
  }

  /** Runs `work` after whatever restart or settings check is under way. */
  private oneAtATime(work: () => Promise<LocalSettingsOutcome>): Promise<LocalSettingsOutcome> {
    const next = (this.applying ?? Promise.resolve()).then(work);
    this.applying = next.catch(() => 'failed' as const);
    return next;
  }

  private async doApplyLocalSettings(): Promise<LocalSettingsOutcome> {
    const started = this.local.launch;
    if (!this.local.running || started === undefined) {
      this.restartPending = false;
      return 'not-running';
    }
    if (sameLaunch(started, this.localLaunch())) {
      this.restartPending = false;
      return 'unchanged';
    }
    let running: number;
    try {
      running = await this.localRunningJobs();
    } catch (error) {
      this.deps.log.warn(`The local backend's settings changed, but its jobs could not be listed: ${error instanceof Error ? error.message : String(error)}`);
      return 'failed';
    }
    if (running === 0) {
      await this.restartLocal();
      return 'restarted';
    }
    const wasPending = this.restartPending;
    this.restartPending = true;
    // Followed live, the jobs' ends reach onFinished, which brings the restart.
    void this.connect(Backends.LOCAL_NAME);
    this.deps.log.info(`The local backend's settings changed; it restarts once its ${running} running job(s) end.`);
    // One notice per change of settings, not one per finished job.
    if (!wasPending) void this.offerRestart(running);
    return 'pending';
  }

  private async offerRestart(running: number): Promise<void> {
    const restartNow = vscode.l10n.t('Restart Now');
    const choice = await vscode.window.showInformationMessage(
      running === 1
        ? vscode.l10n.t('The new local backend settings apply when its running job ends.')
        : vscode.l10n.t('The new local backend settings apply when its {0} running jobs end.', running),
      restartNow,
    );
    if (choice !== restartNow || !this.restartPending) return;
    const restart = vscode.l10n.t('Restart');
    const confirmed = await vscode.window.showWarningMessage(
      vscode.l10n.t('Restart the local backend now?'),
      {
        modal: true,
        detail: vscode.l10n.t('Running jobs are interrupted and continue from their last checkpoint once the backend is back (a job without a checkpoint starts over).'),
      },
      restart,
    );
    if (confirmed !== restart) return;
    await this.oneAtATime(async () => {
      if (!this.restartPending) return 'unchanged';
      await this.restartLocal();
      return 'restarted';
    });
  }

  /** Running jobs on the local backend, as it says itself (the sidebar may not follow it). */
  private async localRunningJobs(): Promise<number> {
    const client = await this.clientOf(Backends.LOCAL_NAME, false);
    let running = 0;
    for await (const job of client.allJobs(100)) if (job.status === 'running') running++;
    return running;
  }

  /** Stops the local backend and starts it with the current settings; its runs are listed again. */
  private async restartLocal(): Promise<void> {
    this.restartPending = false;
    const wasConnected = this.connections.has(Backends.LOCAL_NAME);
    this.disconnect(Backends.LOCAL_NAME);
    this.clients.delete(Backends.LOCAL_NAME);
    this.deps.log.info('Restarting the local backend with its new settings.');
    await this.local.stop();
    try {
      if (wasConnected) await this.refresh(Backends.LOCAL_NAME, false);
      else await this.local.start();
    } catch (error) {
      // A start that fails shows in the tree and through onFailure (doConnect); here only the direct start's.
      this.deps.log.error(`The local backend did not start again: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.changed.fire();
  }

  entries(): readonly BackendEntry[] {
    return this.entryList.map(({ name, url, local }) => ({ name, url: name === Backends.LOCAL_NAME ? this.local.endpoint?.url : url, local }));
  }

  /** Whether a backend of that name exists. */
  has(name: string): boolean {
    return this.entryList.some((e) => e.name === name);
  }

  /** Whether the entry's key is ours to set (remote backends only). */
  isRemote(name: string): boolean {
    return this.entryList.find((e) => e.name === name)?.kind === 'remote';
  }

  /** Whether the backend's live connection is in place. */
  isConnected(name: string): boolean {
    return this.connections.has(name);
  }

  /** Re-reads the settings and the local choice; drops connections of backends that went or changed. */
  reload(): void {
    const entries: Entry[] = [];
    const envUrl = process.env[ENV_URL];
    if (envUrl !== undefined && envUrl !== '' && process.env[ENV_KEY] !== undefined) entries.push({ name: Backends.ENV_NAME, url: envUrl, local: true, kind: 'env' });
    if (this.deps.extension.globalState.get<boolean>(LOCAL_CHOSEN_KEY) === true) entries.push({ name: Backends.LOCAL_NAME, url: undefined, local: true, kind: 'local' });
    for (const setting of readBackendSettings(this.config.backends, this.deps.log)) {
      if (entries.some((e) => e.name === setting.name)) {
        this.deps.log.warn(`${BACKENDS_SETTING}: "${setting.name}" is a built-in backend's name; ignored.`);
        continue;
      }
      entries.push({ name: setting.name, url: setting.url, local: false, kind: 'remote' });
    }
    for (const name of [...this.connections.keys()]) {
      const now = entries.find((e) => e.name === name);
      const before = this.entryList.find((e) => e.name === name);
      if (!now || (now.kind === 'remote' && now.url !== before?.url)) this.disconnect(name);
    }
    this.entryList = entries;
    this.deps.model.setBackends(entries.map((e) => e.name));
    for (const backend of this.deps.model.backendList()) {
      if (!this.connections.has(backend.name) && backend.connection.kind === 'connected') this.deps.model.setConnection(backend.name, { kind: 'idle' });
    }
    this.changed.fire();
  }

  async client(name: string): Promise<BackendClient> {
    return await this.clientOf(name, true);
  }

  /** The client; `interactive` false never prompts (a missing key is an `unauthorized` error instead). */
  private async clientOf(name: string, interactive: boolean): Promise<BackendClient> {
    const entry = this.entryList.find((e) => e.name === name);
    if (!entry) throw new BackendError('unreachable', vscode.l10n.t('There is no backend named {0}.', name));
    let url: string;
    let key: string;
    if (entry.kind === 'env') {
      url = entry.url ?? '';
      key = process.env[ENV_KEY] ?? '';
    } else if (entry.kind === 'local') {
      try {
        const endpoint = await this.local.start();
        ({ url, key } = endpoint);
      } catch (error) {
        if (LocalBackendError.is(error)) throw new BackendError('unreachable', error.message, { cause: error });
        throw error;
      }
      this.changed.fire();
    } else {
      url = entry.url ?? '';
      const stored = await this.deps.extension.secrets.get(secretKey(name, url));
      if (stored === undefined || stored === '') {
        if (!interactive) throw new BackendError('unauthorized', vscode.l10n.t('No API key is set for {0}.', name));
        const asked = await this.askKey(name);
        if (asked === undefined) throw new BackendError('cancelled', vscode.l10n.t('No API key was given for {0}.', name));
        key = asked;
      } else {
        key = stored;
      }
    }
    const cached = this.clients.get(name);
    if (cached && cached.url === url && cached.key === key) return cached.client;
    // The URL or key changed (a restarted local backend listens elsewhere): a new client, and a new connection.
    if (cached) this.disconnect(name);
    const client = new BackendClient({ url, apiKey: key });
    this.clients.set(name, { url, key, client });
    return client;
  }

  /** Asks for a remote backend's key and stores it; undefined when dismissed. */
  async askKey(name: string): Promise<string | undefined> {
    const entry = this.entryList.find((e) => e.name === name);
    if (!entry || entry.kind !== 'remote') return undefined;
    const key = await vscode.window.showInputBox({
      title: vscode.l10n.t('API key for {0}', name),
      prompt: vscode.l10n.t('The key is kept in VS Code\'s secret storage, never in settings.'),
      password: true,
      ignoreFocusOut: true,
      validateInput: (value) => (value.trim() === '' ? vscode.l10n.t('The key cannot be empty.') : undefined),
    });
    if (key === undefined) return undefined;
    await this.deps.extension.secrets.store(secretKey(name, entry.url ?? ''), key.trim());
    this.clients.delete(name);
    return key.trim();
  }

  async pick(placeHolder?: string): Promise<BackendEntry | undefined> {
    const entries = this.entries();
    if (entries.length === 1) return entries[0];
    if (entries.length === 0) {
      const startLocal = vscode.l10n.t('Start Local Backend');
      const addRemote = vscode.l10n.t('Add Remote Backend');
      const choice = await vscode.window.showQuickPick([startLocal, addRemote], {
        placeHolder: vscode.l10n.t('No training backend is configured yet'),
      });
      if (choice === startLocal) {
        await this.chooseLocal();
        return this.entries().find((e) => e.name === Backends.LOCAL_NAME);
      }
      if (choice === addRemote) {
        const name = await this.addInteractively();
        return name === undefined ? undefined : this.entries().find((e) => e.name === name);
      }
      return undefined;
    }
    const picked = await vscode.window.showQuickPick(
      entries.map((e) => ({ label: e.name, description: e.url ?? '', entry: e })),
      { placeHolder: placeHolder ?? vscode.l10n.t('Which backend?') },
    );
    return picked?.entry;
  }

  /** Remembers that the user wants the local backend, and starts it. */
  async chooseLocal(): Promise<void> {
    await this.deps.extension.globalState.update(LOCAL_CHOSEN_KEY, true);
    this.reload();
    await this.connect(Backends.LOCAL_NAME, true);
  }

  /** "Add Backend": name, URL, then the key; writes the user setting. The new name, or undefined when dismissed. */
  async addInteractively(): Promise<string | undefined> {
    const name = await vscode.window.showInputBox({
      title: vscode.l10n.t('Add Backend (1/2)'),
      prompt: vscode.l10n.t('A name for the backend, as the sidebar shows it'),
      ignoreFocusOut: true,
      validateInput: (value) => {
        const trimmed = value.trim();
        if (trimmed === '') return vscode.l10n.t('The name cannot be empty.');
        if (this.has(trimmed)) return vscode.l10n.t('There is already a backend named {0}.', trimmed);
        return undefined;
      },
    });
    if (name === undefined) return undefined;
    const url = await vscode.window.showInputBox({
      title: vscode.l10n.t('Add Backend (2/2)'),
      prompt: vscode.l10n.t('The backend\'s URL, without /v1'),
      placeHolder: 'http://gpu-box:8742',
      ignoreFocusOut: true,
      validateInput: (value) => urlProblem(value),
    });
    if (url === undefined) return undefined;
    const trimmedName = name.trim();
    await this.config.setUserBackends([...this.config.userBackends, { name: trimmedName, url: url.trim().replace(/\/+$/, '') }]);
    this.reload();
    await this.askKey(trimmedName);
    return trimmedName;
  }

  /** Removes a backend: its setting and key, or the local choice (stopping it). */
  async remove(name: string): Promise<void> {
    const entry = this.entryList.find((e) => e.name === name);
    if (!entry) return;
    this.disconnect(name);
    this.clients.delete(name);
    if (entry.kind === 'local') {
      await this.deps.extension.globalState.update(LOCAL_CHOSEN_KEY, false);
      await this.local.stop();
    } else if (entry.kind === 'remote') {
      await this.deps.extension.secrets.delete(secretKey(name, entry.url ?? ''));
      const remaining = this.config.userBackends.filter((item) => (item as { name?: unknown } | null)?.name !== name);
      await this.config.setUserBackends(remaining);
    } else {
      void vscode.window.showInformationMessage(vscode.l10n.t('{0} comes from the environment (npm start) and cannot be removed here.', name));
      return;
    }
    this.reload();
  }

  /** Shows a run in the tree; Training, which owns the tree view, sets it. */
  revealer: ((backend: string, jobId: string) => Promise<void>) | undefined;

  async revealRun(backend: string, jobId: string): Promise<void> {
    await this.connect(backend, true);
    // A run created a moment ago may not have reached the stream yet: its snapshot now keeps the reveal exact.
    const connection = this.connections.get(backend);
    if (connection && this.deps.model.run(backend, jobId) === undefined) {
      this.deps.model.applyJob(backend, await connection.client.getJob(jobId));
    }
    // The form reveals the run it created, usually after uploading its dataset: the Datasets node shows that file.
    await this.refreshFiles(backend);
    await this.revealer?.(backend, jobId);
  }

  /**
   * Lists a connected backend's files into the model (every page). A failure is logged and shown under the
   * Datasets node, never thrown: the files are an aside to the runs. Does nothing when not connected.
   */
  async refreshFiles(name: string): Promise<void> {
    const connection = this.connections.get(name);
    if (!connection) return;
    try {
      const files: FileObject[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await connection.client.listFiles({ after, limit: 100 }, { signal: connection.abort.signal });
        files.push(...page.data);
        const last = page.data.at(-1)?.id;
        if (!page.has_more || last === undefined) break;
        after = last;
      }
      // A reconnect or refresh while the listing ran: its own listing is the one that counts.
      if (this.connections.get(name) !== connection) return;
      this.deps.model.setFiles(name, files);
    } catch (error) {
      if (this.connections.get(name) !== connection) return;
      const message = error instanceof Error ? error.message : String(error);
      this.deps.log.warn(`${name}: the files could not be listed: ${message}`);
      this.deps.model.setFilesError(name, vscode.l10n.t('The datasets could not be listed: {0}', message));
    }
  }

  /**
   * Connects a backend: fills its runs from `listJobs` and follows them live. Failures land in the model (the
   * tree shows them) and go to `onFailure`; with `interactive`, missing keys are asked for.
   */
  async connect(name: string, interactive = false): Promise<void> {
    if (this.connections.has(name)) return;
    const pending = this.connecting.get(name);
    if (pending) return await pending;
    const attempt = this.doConnect(name, interactive).finally(() => this.connecting.delete(name));
    this.connecting.set(name, attempt);
    await attempt;
  }

  /** Connects every backend that is not connected and has not failed (the view was shown). */
  connectAll(): void {
    for (const backend of this.deps.model.backendList()) {
      if (backend.connection.kind === 'idle') void this.connect(backend.name);
    }
  }

  /** Drops the connection and connects again with a fresh fill. */
  async refresh(name: string, interactive = true): Promise<void> {
    this.disconnect(name);
    this.deps.model.reset(name);
    await this.connect(name, interactive);
  }

  private async doConnect(name: string, interactive: boolean): Promise<void> {
    const { model, log } = this.deps;
    model.setConnection(name, { kind: 'connecting' });
    const abort = new AbortController();
    try {
      const client = await this.clientOf(name, interactive);
      const jobs: FineTuningJob[] = [];
      for await (const job of client.allJobs(100, { signal: abort.signal })) jobs.push(job);
      if (!this.has(name)) return;
      // Named with their last seq: the socket sends no backlog of what the listing already shows.
      const followed: Record<string, number> = {};
      for (const job of jobs) followed[job.id] = job.last_event_seq;
      const stream = new JobEventStream(client, { jobs: followed, all: true });
      stream.onJob((job) => model.applyJob(name, job));
      stream.onEvent((event) => model.applyEvent(name, event));
      stream.onCheckpoint((jobId, checkpoint) => model.applyCheckpoint(name, jobId, checkpoint));
      stream.onError((error) => {
        log.warn(`${name}: ${error.message}`);
        if (error.reason === 'unauthorized') {
          this.disconnect(name);
          model.setConnection(name, { kind: 'failed', reason: error.reason, message: error.message });
          this.deps.onFailure(name, error);
        }
      });
      stream.onStateChange((state) => log.debug(`${name}: event stream ${state}`));
      this.connections.set(name, { client, stream, abort });
      stream.start();
      // Connected and listed in one change: the tree hands the runs over once. A second refresh of the backend's
      // node (VS Code delivers one 200 ms after another) would replace every run row under a user's click.
      model.fill(name, jobs);
      log.info(`${name}: connected to ${client.url}, ${jobs.length} run(s).`);
      void this.refreshFiles(name);
      void this.recallMessages(name, client, jobs, abort.signal);
    } catch (error) {
      abort.abort();
      const failure = BackendError.is(error) ? error : new BackendError('protocol', error instanceof Error ? error.message : String(error), { cause: error });
      log.error(`${name}: ${failure.message}${failure.details.request ? ` (${failure.details.request})` : ''}`);
      model.setConnection(name, { kind: 'failed', reason: failure.reason, message: failure.message });
      if (failure.reason !== 'cancelled') this.deps.onFailure(name, failure);
    }
  }

  /**
   * The latest message of each unfinished run, read from its last events: the listing does not carry it, and the
   * stream sends only what comes after the listing, so a run that is downloading its model or resuming after a
   * restart would show only its status until its next message. A few requests at a time; a failure only logs.
   */
  private async recallMessages(name: string, client: BackendClient, jobs: readonly FineTuningJob[], signal: AbortSignal): Promise<void> {
    const todo = jobs.filter((job) => !isFinal(job.status) && job.last_event_seq > 0);
    const recall = async (): Promise<void> => {
      for (let job = todo.shift(); job !== undefined && !signal.aborted; job = todo.shift()) {
        try {
          const page = await client.listEvents(job.id, Math.max(0, job.last_event_seq - RECALLED_EVENTS), RECALLED_EVENTS, { signal });
          const message = page.data.findLast((event) => event.type === 'message');
          if (message !== undefined && !signal.aborted) this.deps.model.recallMessage(name, message);
        } catch (error) {
          if (!signal.aborted) this.deps.log.warn(`${name}: the latest message of ${job.id} was not read: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(RECALL_REQUESTS, todo.length) }, recall));
  }

  /** Closes a backend's live connection (the model keeps what it showed until a refresh). */
  disconnect(name: string): void {
    const connection = this.connections.get(name);
    if (!connection) return;
    this.connections.delete(name);
    connection.abort.abort();
    connection.stream.dispose();
  }

  /** Stops the local backend (deactivation awaits this). */
  async stop(): Promise<void> {
    for (const name of [...this.connections.keys()]) this.disconnect(name);
    await this.local.stop();
  }

  dispose(): void {
    for (const name of [...this.connections.keys()]) this.disconnect(name);
    void this.local.stop();
    this.scope.dispose();
    this.changed.dispose();
  }
}

/** SecretStorage key of a remote backend's API key: by name and URL, so a changed URL asks again. */
function secretKey(name: string, url: string): string {
  return `finetune.apiKey:${name}:${url}`;
}

