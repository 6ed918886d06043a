// The "New Training Run" form's panel host: one webview panel per form, the host side of webview/protocol.ts.
// The host owns the model (values, the backend's models and GPUs, the dataset's check, the launch); the webview
// renders the view it is sent and reports what the user types. Logic that needs no vscode is in newRunModel.ts
// and datasetCheck.ts.
import { basename } from 'node:path';
import * as vscode from 'vscode';
import type { ModelObject, SystemInfo } from '../common/api';
import { LORA_TARGET_MODULES } from '../common/api';
import {
  CancelUploadNotification,
  ChooseDatasetRequest,
  IpcEndpoint,
  OpenFindingRequest,
  ReadyRequest,
  RefreshBackendNotification,
  StartRequest,
  ValuesChangedNotification,
  ViewNotification,
  type Choice,
  type DatasetView,
  type FieldKey,
  type FormValues,
  type Snapshot,
  type ViewModel,
} from '../webview/protocol';
import { BackendError } from './backendErrors';
import type { BackendRegistry } from './backendRegistry';
import type { CommandFactory } from './commands';
import type { DatasetClient } from './datasetClient';
import { checkDatasetFile, DatasetCheckError, loadTokenizer, type DatasetCheckResult } from './datasetCheck';
import { isDatasetDocument } from './datasets';
import {
  allowsFullFineTuning,
  applyModelDefaults,
  buildCreateRequest,
  bytesText,
  emptyValues,
  fieldOfParam,
  modelDefaults,
  overLengthCount,
  parametersText,
  parseNumber,
  PostedValues,
  prefillFromJob,
  settingsText,
  summaryView,
  validateValues,
} from './newRunModel';
import { webviewStrings } from './newRunStrings';
import { webviewPageHtml, webviewPanelOptions } from './webviewPage';

/** What the form's panels need from the extension. */
export interface NewRunDeps {
  extension: vscode.ExtensionContext;
  log: vscode.LogOutputChannel;
  backends: BackendRegistry;
  datasets: DatasetClient;
}

/** How a form opens: on a dataset, or prefilled from a run. */
export interface OpenOptions {
  dataset?: vscode.Uri;
  backend?: string;
  values?: FormValues;
  rerunOf?: string;
}

/** The internal command that hands the in-host tests the open forms (not in package.json: not for users). */
export const PANELS_TEST_COMMAND = '_finetune.newRun.panels';

/** The "New Training Run" webview panels (one per form; revived after a reload). */
export class NewRunPanels implements vscode.Disposable {
  static readonly viewType = 'finetune.newRun';
  private readonly panels = new Set<NewRunPanel>();
  private readonly registrations: vscode.Disposable[] = [];

  constructor(readonly deps: NewRunDeps) {
    this.registrations.push(
      vscode.window.registerWebviewPanelSerializer(NewRunPanels.viewType, {
        deserializeWebviewPanel: (panel, state: unknown) => {
          this.adopt(panel, { values: isFormValues(state) ? state : undefined });
          return Promise.resolve();
        },
      }),
      vscode.commands.registerCommand(PANELS_TEST_COMMAND, () => [...this.panels]),
    );
  }

  /** Opens a new form. */
  open(options: OpenOptions = {}): NewRunPanel {
    const panel = vscode.window.createWebviewPanel(NewRunPanels.viewType, vscode.l10n.t('New Training Run'), vscode.ViewColumn.Active, this.webviewOptions());
    return this.adopt(panel, options);
  }

  /** The options of the form's webview: scripts, and only dist/webview and media/ as local resources. */
  webviewOptions(): vscode.WebviewPanelOptions & vscode.WebviewOptions {
    return webviewPanelOptions(this.deps.extension.extensionUri);
  }

  private adopt(webviewPanel: vscode.WebviewPanel, options: OpenOptions): NewRunPanel {
    webviewPanel.webview.options = this.webviewOptions();
    const panel = new NewRunPanel(webviewPanel, this.deps, options);
    this.panels.add(panel);
    webviewPanel.onDidDispose(() => {
      this.panels.delete(panel);
      panel.dispose();
    });
    return panel;
  }

  dispose(): void {
    for (const registration of this.registrations) registration.dispose();
    for (const panel of [...this.panels]) panel.close();
  }
}

function isFormValues(value: unknown): value is FormValues {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<FormValues>;
  return typeof v.name === 'string' && typeof v.backend === 'string' && typeof v.model === 'string' && typeof v.settings === 'object' && Array.isArray(v.touched);
}

/** A field error, or the form's, as the start request's rejection (its `code` names the field). */
class FormError extends Error {
  constructor(
    readonly code: FieldKey | 'launch',
    message: string,
  ) {
    super(message);
  }
}

/** The view's pieces that come from the backend. */
interface BackendData {
  models: ModelObject[];
  system: SystemInfo | undefined;
}

/** One form: its values, the backend's data, the dataset's check, and the launch. */
export class NewRunPanel {
  private readonly ipc: IpcEndpoint;
  private values: FormValues;
  private valuesRevision = 1;
  /** The webview's last edit taken in (see ViewModel.valuesEdit). */
  private valuesEdit = 0;
  /** The values of the revisions posted lately (see PostedValues). */
  private readonly posted = new PostedValues();
  private backendData: BackendData | undefined;
  private backendLoading = false;
  private backendError: string | undefined;
  private dataset: { key: string; state: 'checking' | 'ready' | 'failed'; progress: number; result?: DatasetCheckResult; failure?: string } | undefined;
  private datasetAbort: AbortController | undefined;
  private launch: ViewModel['launch'] = { phase: 'idle', progress: 0 };
  private postedProgress = 0;
  private launchErrors: Partial<Record<FieldKey, string>> = {};
  private uploadAbort: AbortController | undefined;
  private readonly rerunOf: string | undefined;
  private readonly updates = new vscode.EventEmitter<ViewModel>();
  private readonly subscriptions: vscode.Disposable[] = [];
  private disposed = false;
  /** Fires with every view sent to the webview (the in-host tests wait on it). */
  readonly onDidUpdate = this.updates.event;

  constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly deps: NewRunDeps,
    options: OpenOptions,
  ) {
    this.rerunOf = options.rerunOf;
    this.values = options.values ?? emptyValues();
    if (options.backend !== undefined) this.values.backend = options.backend;
    if (options.dataset !== undefined) this.values.dataset = { kind: 'local', path: options.dataset.fsPath };
    this.ipc = new IpcEndpoint((message) => void this.panel.webview.postMessage(message));
    this.ipc.onRequest(ReadyRequest, ({ saved }) => this.ready(saved));
    this.ipc.onNotification(ValuesChangedNotification, ({ values, edit, revision }) => {
      this.valuesEdit = Math.max(this.valuesEdit, edit);
      this.setValues(this.posted.fromWebview(values, revision, this.valuesRevision, this.values));
    });
    this.ipc.onRequest(ChooseDatasetRequest, () => this.chooseDataset());
    this.ipc.onRequest(OpenFindingRequest, ({ line, column }) => this.openFinding(line, column));
    this.ipc.onRequest(StartRequest, ({ values }) => this.start(values));
    this.ipc.onNotification(CancelUploadNotification, () => this.uploadAbort?.abort());
    this.ipc.onNotification(RefreshBackendNotification, () => void this.loadBackend());
    this.subscriptions.push(
      this.panel.webview.onDidReceiveMessage((message: unknown) => this.ipc.receive(message)),
      deps.backends.onDidChange(() => {
        if (this.values.backend !== '' || deps.backends.entries().length === 0) return this.postView();
        this.setValuesFromHost({ ...this.values, backend: deps.backends.entries()[0].name });
      }),
    );
    this.panel.webview.html = this.html();
    if (this.values.backend === '') this.values.backend = deps.backends.entries()[0]?.name ?? '';
    void this.loadBackend();
    this.checkDataset();
  }

  /** The view as the webview last got it (built now). */
  get view(): ViewModel {
    return this.buildView();
  }

  /** Sets the values as if the user had typed them (the webview's path; the in-host tests use it too). */
  setValues(values: FormValues): void {
    const previous = this.values;
    this.values = values;
    this.launchErrors = {};
    if (values.backend !== previous.backend) {
      void this.loadBackend();
      return;
    }
    // The settings the user has not touched always show the model's defaults: also when the webview's values were
    // sent before it saw the host's last ones (a model's defaults applied meanwhile), which would otherwise bring
    // the general defaults back under a model that has its own.
    const withDefaults = applyModelDefaults(values, this.model());
    if (JSON.stringify(withDefaults.settings) !== JSON.stringify(values.settings)) {
      this.values = withDefaults;
      this.valuesRevision++;
    }
    if (datasetKey(values) !== datasetKey(previous)) this.checkDataset();
    this.postView();
  }

  /** Start Training: validate, upload (cancellable), create the job, show it in the tree, close the form. */
  async start(values: FormValues = this.values): Promise<{ jobId: string }> {
    this.setValues(values);
    if (this.launch.phase === 'uploading' || this.launch.phase === 'creating') throw new FormError('launch', vscode.l10n.t('The run is being started already.'));
    const view = this.buildView();
    if (!view.canStart) throw new FormError(firstErrorField(view.fieldErrors) ?? 'launch', view.blockedReason ?? vscode.l10n.t('The form has errors.'));
    const model = this.model();
    try {
      const client = await this.deps.backends.client(this.values.backend);
      let fileId: string;
      const dataset = this.values.dataset;
      if (dataset === null) throw new FormError('dataset', vscode.l10n.t('Choose a training file.'));
      if (dataset.kind === 'remote') {
        fileId = dataset.fileId;
      } else {
        this.uploadAbort = new AbortController();
        this.setLaunch({ phase: 'uploading', progress: 0 });
        const file = await client.uploadFile(dataset.path, {
          signal: this.uploadAbort.signal,
          onProgress: (p) => this.setLaunch({ phase: 'uploading', progress: p.total !== undefined && p.total > 0 ? p.bytes / p.total : 0 }),
        });
        fileId = file.id;
      }
      this.setLaunch({ phase: 'creating', progress: 1 });
      const job = await client.createJob(buildCreateRequest(this.values, modelDefaults(model), fileId));
      this.deps.log.info(`New training run ${job.id} on ${this.values.backend} (${job.model}).`);
      this.setLaunch({ phase: 'done', progress: 1 });
      void this.deps.backends.revealRun(this.values.backend, job.id).then(undefined, (error: unknown) => this.deps.log.warn(`revealRun: ${String(error)}`));
      // The new run's dashboard takes the form's place.
      void vscode.commands.executeCommand('finetune.openDashboard', { backend: this.values.backend, jobId: job.id }).then(undefined, (error: unknown) => this.deps.log.warn(`openDashboard: ${String(error)}`));
      this.panel.dispose();
      return { jobId: job.id };
    } catch (error) {
      throw this.launchFailed(error);
    } finally {
      this.uploadAbort = undefined;
    }
  }

  /** Closes the form. */
  close(): void {
    this.panel.dispose();
  }

  /** Releases what the form holds (its panel is gone). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.ipc.close();
    this.datasetAbort?.abort();
    this.uploadAbort?.abort();
    for (const s of this.subscriptions) s.dispose();
    this.updates.dispose();
  }

  private ready(saved: FormValues | null): Snapshot {
    if (saved !== null && isFormValues(saved)) {
      const previous = this.values;
      this.values = saved;
      if (saved.backend !== previous.backend) void this.loadBackend();
      if (datasetKey(saved) !== datasetKey(previous)) this.checkDataset();
    }
    const view = this.buildView();
    this.posted.posted(view.valuesRevision, view.values);
    return { strings: webviewStrings(), view };
  }

  private async chooseDataset(): Promise<{ chosen: boolean }> {
    const current = this.values.dataset?.kind === 'local' ? vscode.Uri.file(this.values.dataset.path) : undefined;
    const picked = await vscode.window.showOpenDialog({
      canSelectMany: false,
      defaultUri: current,
      filters: { [vscode.l10n.t('Datasets')]: ['jsonl', 'ndjson'] },
      openLabel: vscode.l10n.t('Use for Training'),
    });
    if (picked === undefined || picked.length === 0) return { chosen: false };
    this.setValuesFromHost({ ...this.values, dataset: { kind: 'local', path: picked[0].fsPath } });
    return { chosen: true };
  }

  private async openFinding(line: number, column: number): Promise<null> {
    if (this.values.dataset?.kind !== 'local') return null;
    const position = new vscode.Position(line, column);
    await vscode.window.showTextDocument(vscode.Uri.file(this.values.dataset.path), { selection: new vscode.Range(position, position), viewColumn: vscode.ViewColumn.Beside });
    return null;
  }

  private setValuesFromHost(values: FormValues): void {
    this.valuesRevision++;
    this.setValues(values);
  }

  private model(): ModelObject | undefined {
    return this.backendData?.models.find((m) => m.id === this.values.model);
  }

  private async loadBackend(): Promise<void> {
    const name = this.values.backend;
    this.backendData = undefined;
    this.backendError = undefined;
    if (name === '') return this.postView();
    this.backendLoading = true;
    this.postView();
    try {
      const client = await this.deps.backends.client(name);
      const [models, system] = await Promise.all([client.models(), client.system().catch(() => undefined)]);
      if (this.values.backend !== name) return;
      this.backendData = { models: models.filter((m) => m.kind === 'base'), system };
      const values = { ...this.values };
      if (!this.backendData.models.some((m) => m.id === values.model)) {
        const first = this.backendData.models.find((m) => m.available !== false) ?? this.backendData.models[0];
        values.model = first?.id ?? '';
      }
      const gpus = system?.gpus.length ?? 1;
      if (system !== undefined && gpus === 0) values.gpus = '0';
      else if (values.gpus === '0' || (parseNumber(values.gpus) ?? 0) > gpus) values.gpus = '1';
      this.values = applyModelDefaults(values, this.model());
      this.valuesRevision++;
    } catch (error) {
      if (this.values.backend !== name) return;
      this.backendError = error instanceof Error ? error.message : String(error);
      this.deps.log.warn(`New Training Run: ${name}: ${this.backendError}`);
    } finally {
      if (this.values.backend === name) this.backendLoading = false;
    }
    this.postView();
  }

  private checkDataset(): void {
    this.datasetAbort?.abort();
    const dataset = this.values.dataset;
    if (dataset?.kind !== 'local') {
      this.dataset = undefined;
      return;
    }
    const key = datasetKey(this.values);
    const abort = new AbortController();
    this.datasetAbort = abort;
    this.dataset = { key, state: 'checking', progress: 0 };
    const tokenizerPath = vscode.Uri.joinPath(this.deps.extension.extensionUri, 'media', 'qwen2.5-tokenizer.json.gz').fsPath;
    let lastPost = 0;
    checkDatasetFile(dataset.path, {
      tokenizer: loadTokenizer(tokenizerPath),
      signal: abort.signal,
      onProgress: (fraction) => {
        if (this.dataset?.key !== key) return;
        this.dataset.progress = fraction;
        if (Date.now() - lastPost > 200) {
          lastPost = Date.now();
          this.postView();
        }
      },
    }).then(
      (result) => {
        if (this.dataset?.key !== key) return;
        this.dataset = { key, state: 'ready', progress: 1, result };
        if (result.tokenizerFailure !== undefined) this.deps.log.warn(`New Training Run: no token counts: ${result.tokenizerFailure}`);
        this.postView();
      },
      (error: unknown) => {
        if (DatasetCheckError.is(error) && error.reason === 'cancelled') return;
        if (this.dataset?.key !== key) return;
        this.dataset = { key, state: 'failed', progress: 1, failure: error instanceof Error ? error.message : String(error) };
        this.postView();
      },
    );
  }

  private setLaunch(launch: ViewModel['launch']): void {
    // An upload reports every chunk; the form needs a new view per percent at most.
    const same = launch.phase === this.launch.phase && Math.abs(launch.progress - this.postedProgress) < 0.01 && launch.progress < 1;
    this.launch = launch;
    if (same) return;
    this.postedProgress = launch.progress;
    this.postView();
  }

  /** A launch's failure, shown in the form (on its field when the backend names one), as the request's error. */
  private launchFailed(error: unknown): FormError {
    let failure: FormError;
    if (error instanceof FormError) failure = error;
    else if (BackendError.is(error) && error.reason === 'cancelled') failure = new FormError('launch', vscode.l10n.t('The upload was cancelled; nothing was kept.'));
    else if (BackendError.is(error)) {
      const field = fieldOfParam(error.apiError?.param);
      const message = error.apiError?.message ?? error.message;
      failure = new FormError(field ?? 'launch', message);
    } else failure = new FormError('launch', error instanceof Error ? error.message : String(error));
    this.deps.log.warn(`New Training Run: ${failure.code}: ${failure.message}`);
    if (failure.code !== 'launch') this.launchErrors = { [failure.code]: failure.message };
    this.launch = { phase: 'idle', progress: 0, error: failure.message };
    this.postView();
    return failure;
  }

  private postView(): void {
    if (this.disposed) return;
    const view = this.buildView();
    this.posted.posted(view.valuesRevision, view.values);
    this.ipc.notify(ViewNotification, { view });
    this.updates.fire(view);
  }

  private buildView(): ViewModel {
    const model = this.model();
    const models = this.backendData?.models ?? [];
    const gpus = this.backendData?.system?.gpus ?? [];
    const cpuOnly = this.backendData?.system !== undefined && gpus.length === 0;
    const defaults = modelDefaults(model);
    const fieldErrors: ViewModel['fieldErrors'] = {
      ...validateValues(this.values, { model, modelIds: models.map((m) => m.id), maxGpus: this.backendData === undefined ? 1 : cpuOnly ? 0 : Math.max(1, gpus.length) }),
      ...this.launchErrors,
    };
    const dataset = this.datasetView();
    let blockedReason: string | undefined;
    if (this.backendLoading) blockedReason = vscode.l10n.t('Loading the backend\'s models…');
    else if (this.backendError !== undefined) blockedReason = this.backendError;
    else if (dataset?.state === 'checking') blockedReason = vscode.l10n.t('The dataset is being checked.');
    else if (dataset?.state === 'failed') blockedReason = dataset.failure;
    else if ((dataset?.errors ?? 0) > 0) blockedReason = vscode.l10n.t('The dataset has errors: fix them first.');
    else if (dataset?.state === 'ready' && (dataset.examples ?? 0) === 0) blockedReason = vscode.l10n.t('The dataset has no examples.');
    else if (Object.keys(fieldErrors).length > 0) blockedReason = vscode.l10n.t('Some fields need a fix.');
    const result = this.dataset?.state === 'ready' ? this.dataset.result : undefined;
    const numbers = result === undefined ? undefined : { validExamples: result.summary.validExamples, tokens: result.tokens, lengths: result.lengths };
    const view: ViewModel = {
      valuesRevision: this.valuesRevision,
      valuesEdit: this.valuesEdit,
      values: this.values,
      // The local backend's name says it is local: its detail is where it listens, once it does.
      backends: this.deps.backends.entries().map((e) => ({ value: e.name, label: e.name, detail: e.url ?? (e.local ? vscode.l10n.t('starts when needed') : '') })),
      models: models.map((m) => modelChoice(m)),
      trainingTypes: [
        { value: 'lora', label: vscode.l10n.t('LoRA') },
        ...(allowsFullFineTuning(model) ? [{ value: 'full', label: vscode.l10n.t('Full fine-tuning') }] : []),
      ],
      compute: cpuOnly
        ? [{ value: '0', label: vscode.l10n.t('CPU'), detail: jobsAtATime(this.backendData?.system?.slots ?? 1) }]
        : (gpus.length > 0 ? gpus : [undefined]).map((_, i) => gpuChoice(i + 1, gpus, this.backendData?.system)),
      backendState: this.backendError !== undefined ? { loading: false, error: this.backendError } : { loading: this.backendLoading },
      defaults: settingsText(defaults),
      fieldErrors,
      dataset,
      summary: summaryView(numbers, this.values, result?.estimated ?? false, model?.measured_tokens_per_second),
      canStart: blockedReason === undefined && this.launch.phase === 'idle',
      launch: this.launch,
    };
    const remote = this.values.dataset?.kind === 'remote' ? this.values.dataset : undefined;
    if (remote?.examples !== undefined) view.summary = summaryView({ validExamples: remote.examples, tokens: 0, lengths: [] }, this.values, false, model?.measured_tokens_per_second);
    if (blockedReason !== undefined) view.blockedReason = blockedReason;
    if (this.rerunOf !== undefined) view.rerunOf = this.rerunOf;
    return view;
  }

  private datasetView(): DatasetView | null {
    const choice = this.values.dataset;
    if (choice === null) return null;
    if (choice.kind === 'remote') return { label: choice.filename, state: 'remote', progress: 1, findings: [], totalFindings: 0 };
    const label = basename(choice.path);
    const check = this.dataset;
    if (check === undefined || check.state === 'checking') return { label, state: 'checking', progress: check?.progress ?? 0, findings: [], totalFindings: 0 };
    if (check.state === 'failed' || check.result === undefined) return { label, state: 'failed', progress: 1, failure: check.failure, findings: [], totalFindings: 0 };
    const r = check.result;
    const maxSeq = parseNumber(this.values.settings.max_seq_length);
    return {
      label,
      state: 'ready',
      progress: 1,
      examples: r.summary.examples,
      errors: r.summary.errors,
      warnings: r.summary.warnings,
      tokens: r.tokens,
      trainedTokens: r.trainedTokens,
      overLength: maxSeq === undefined ? undefined : overLengthCount({ validExamples: r.summary.validExamples, tokens: r.tokens, lengths: r.lengths }, maxSeq),
      estimated: r.estimated,
      findings: r.findings.map((f) => ({ line: f.line, column: f.start, code: f.code, severity: f.severity, message: f.message })),
      totalFindings: r.totalFindings,
    };
  }

  private html(): string {
    return webviewPageHtml({
      webview: this.panel.webview,
      extensionUri: this.deps.extension.extensionUri,
      script: 'dist/webview/newRun.js',
      styles: ['media/newRun.css'],
      title: vscode.l10n.t('New Training Run'),
      lang: vscode.env.language,
    });
  }
}


function datasetKey(values: FormValues): string {
  const d = values.dataset;
  return d === null ? '' : d.kind === 'local' ? `local:${d.path}` : `remote:${d.fileId}`;
}

function firstErrorField(errors: Partial<Record<FieldKey, string>>): FieldKey | undefined {
  return Object.keys(errors)[0] as FieldKey | undefined;
}

function modelChoice(m: ModelObject): Choice {
  const parts: string[] = [];
  if (m.parameters !== undefined) parts.push(vscode.l10n.t('{0} parameters', parametersText(m.parameters)));
  if (m.memory_required !== undefined) parts.push(vscode.l10n.t('needs {0}', bytesText(m.memory_required)));
  if (m.context_length !== undefined) parts.push(vscode.l10n.t('context {0}', m.context_length));
  if (m.download_bytes !== undefined) parts.push(vscode.l10n.t('downloaded on first use ({0})', bytesText(m.download_bytes)));
  if (m.available === false) parts.push(vscode.l10n.t('not available: {0}', m.unavailable_reason ?? ''));
  const choice: Choice = { value: m.id, label: m.id, detail: parts.join(' · ') };
  if (m.available === false) choice.disabled = true;
  return choice;
}

function gpuChoice(count: number, gpus: SystemInfo['gpus'], system: SystemInfo | undefined): Choice {
  const used = gpus.slice(0, count);
  const memory = used.reduce((sum, g) => sum + g.memory_total, 0);
  const label = count === 1 ? vscode.l10n.t('1 GPU') : vscode.l10n.t('{0} GPUs', count);
  const detail = used.length > 0 ? `${used.map((g) => g.name).join(', ')} · ${bytesText(memory)}` : system === undefined ? vscode.l10n.t('the service decides') : '';
  return { value: String(count), label, detail };
}

/** The dataset a "New Training Run" starts on: the argument, else the active dataset editor. */
function datasetArgument(arg: unknown): vscode.Uri | undefined {
  if (arg instanceof vscode.Uri) return arg;
  const document = vscode.window.activeTextEditor?.document;
  return document !== undefined && isDatasetDocument(document) && document.uri.scheme === 'file' ? document.uri : undefined;
}

/** A run node of the runs tree: what "Rerun With Changes" gets. */
function runArgument(arg: unknown): { backend: string; jobId: string } | undefined {
  if (typeof arg !== 'object' || arg === null) return undefined;
  const { backend, jobId } = arg as { backend?: unknown; jobId?: unknown };
  return typeof backend === 'string' && typeof jobId === 'string' ? { backend, jobId } : undefined;
}

/** The commands of the form (New Training Run, Rerun With Changes), by id (merged into commands.ts's table). */
export const newRunCommandFactories: Readonly<Record<string, CommandFactory>> = {
  'finetune.newTrainingRun': (ctx) => async (arg?: unknown) => {
    const dataset = datasetArgument(arg);
    // With no backend configured, the registry offers to start the local one (or to add a remote one) first.
    let backend: string | undefined;
    if (ctx.newRun.deps.backends.entries().length === 0) {
      backend = (await ctx.newRun.deps.backends.pick(vscode.l10n.t('Train on which backend?')))?.name;
      if (backend === undefined) return;
    }
    ctx.newRun.open({ dataset, backend });
  },

  'finetune.rerunWithChanges': (ctx) => async (arg?: unknown) => {
    const run = runArgument(arg);
    if (run === undefined) throw new Error(vscode.l10n.t('Rerun With Changes needs a run from the runs view.'));
    const client = await ctx.training.backends.client(run.backend);
    const job = await client.getJob(run.jobId);
    const [models, file] = await Promise.all([client.models().catch(() => []), client.getFile(job.training_file).catch(() => undefined)]);
    const values = prefillFromJob(job, run.backend, models.find((m) => m.id === job.model), file);
    const valid = values.settings.lora_target_modules.split(',').every((t) => (LORA_TARGET_MODULES as readonly string[]).includes(t));
    if (!valid) ctx.log.warn(`Rerun of ${job.id}: unknown target modules ${values.settings.lora_target_modules}`);
    ctx.newRun.open({ values, backend: run.backend, rerunOf: job.id });
  },
};

/** "1 job at a time" / "3 jobs at a time". */
function jobsAtATime(slots: number): string {
  return slots === 1 ? vscode.l10n.t('1 job at a time') : vscode.l10n.t('{0} jobs at a time', slots);
}
