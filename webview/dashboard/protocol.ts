// The run dashboard's protocol between the extension host (src/dashboardPanel.ts) and the webview
// (webview/dashboard/main.ts), declared once on the generic channel of webview/protocol.ts. The webview opens with
// a `ready` request answered by a snapshot (strings, the runs' headers and checkpoints); the metrics follow as
// columnar batches (one array per field, coalesced by the host), never one message per point. A reloaded webview
// asks again and gets everything again: it never patches deltas onto a lost state.
//
// Pure TypeScript (no DOM, no Node, no vscode): both sides import it.
import { ipcNotification, ipcRequest } from '../protocol';
import type { ChartData, ChartSettings } from './chartApi';

// ---------------------------------------------------------------------------------------------------------
// The data

/** What identifies a run across the extension (the same shape as src/runsModel.ts's RunRef). */
export interface DashboardRunRef {
  backend: string;
  jobId: string;
}

/** The metrics the dashboard charts, by their names in the metrics events (common/api.ts MetricsData). */
export const METRIC_FIELDS = [
  'train_loss',
  'valid_loss',
  'train_mean_token_accuracy',
  'valid_mean_token_accuracy',
  'learning_rate',
  'grad_norm',
  'tokens_per_second',
  'gpu_memory',
] as const;

/** One metric's name. */
export type MetricField = (typeof METRIC_FIELDS)[number];

/**
 * New rows of one run (its index in the dashboard's runs), columnar: the steps, their seconds since the run
 * started, and per metric one value per row (NaN where the row has none: valid_* between evaluations). Metrics
 * with no value in any of the rows are left out. Typed arrays: VS Code hands them to the webview as binary
 * buffers rather than JSON text (a 100,000-step history is 12 MB of JSON, 6 MB of buffers).
 */
export interface MetricsBatch {
  run: number;
  step: Float64Array;
  time: Float64Array;
  values: Partial<Record<MetricField, Float64Array>>;
}

/** A `label: value` row, formatted and translated by the host. */
export interface InfoRow {
  label: string;
  value: string;
}

/** One run's header, sent whole whenever it changes (it is small). */
export interface RunHeaderView {
  /** The run's index in the dashboard (series keys and colours follow it). */
  index: number;
  backend: string;
  jobId: string;
  /** The suffix, else the id. */
  name: string;
  model: string;
  status: string;
  /** The status, translated. */
  statusText: string;
  final: boolean;
  step: number;
  totalSteps: number;
  epoch: number;
  /** Unix seconds: when the engine started it (null before), and when it finished (null while not final). */
  startedAt: number | null;
  finishedAt: number | null;
  /** Unix seconds the run is expected to finish (the backend's estimate, else extrapolated); null when unknown. */
  etaAt: number | null;
  /** Tokens trained, formatted. */
  tokens: string;
  /** The settings actually used. */
  settings: InfoRow[];
  /** Why it failed, for a person. */
  error: string | null;
  /** What a running run is doing before its first step (its latest message: a model downloading, loading). */
  note: string | null;
  /** Whether the history is still being read from the backend. */
  loading: boolean;
  /** Why the history could not be read. */
  loadError: string | null;
}

/** A checkpoint as the list shows it. */
export interface CheckpointView {
  id: string;
  step: number;
  /** The model name, for chat and copying. */
  model: string;
  /** Its metrics, formatted (`train loss 1.234`, …). */
  metrics: InfoRow[];
  sample: SampleView | null;
}

/** The checkpoint's sample: the conversation up to the answer, the dataset's answer, and this checkpoint's. */
export interface SampleView {
  /** The system prompt (shown muted), if the conversation has one. */
  system: string | null;
  /** The turns after the system prompt, up to and including the last user turn. */
  prompt: { role: string; content: string }[];
  reference: string;
  answer: string;
}

/** One run's checkpoints, by step ascending. */
export interface RunCheckpoints {
  run: number;
  checkpoints: CheckpointView[];
}

/** What the webview keeps with setState (and the serializer restores the panel from). */
export interface DashboardState {
  runs: DashboardRunRef[];
  settings: ChartSettings;
}

/** The first answer: the strings, and what is known now (the metrics follow as batches). */
export interface DashboardSnapshot {
  strings: Record<DashboardStringKey, string>;
  runs: RunHeaderView[];
  checkpoints: RunCheckpoints[];
  /** The settings to start from (the saved ones, else the defaults). */
  settings: ChartSettings;
  /** The runs, for the state the webview keeps (the serializer reopens them). */
  runRefs: DashboardRunRef[];
}

/** What the checkpoint list shows of one checkpoint, for tests. */
export interface InspectedCheckpoint {
  run: number;
  step: number;
  system: string | null;
  prompt: string;
  reference: string;
  answer: string;
}

/** What the webview holds and shows, for tests (also on `window.finetuneDashboard.inspect()`). */
export interface InspectResult {
  charts: ChartData[];
  checkpoints: InspectedCheckpoint[];
  settings: ChartSettings;
  /** Rows of metrics received (whatever the charts did with them). */
  received: number;
  /** What each run's header shows: its name, status, progress and the settings' labels with their values. */
  runs: { name: string; status: string; progress: string; settings: string[] }[];
}

// ---------------------------------------------------------------------------------------------------------
// The messages

/** Webview → host, once loaded: the settings it kept, if any; answered with the snapshot. */
export const DashboardReadyRequest = ipcRequest<{ saved: DashboardState | null }, DashboardSnapshot>('dashboard/ready');
/** Host → webview: new metrics points, coalesced. */
export const MetricsNotification = ipcNotification<{ batches: MetricsBatch[] }>('dashboard/metrics');
/** Host → webview: the runs' headers, whole. */
export const HeadersNotification = ipcNotification<{ runs: RunHeaderView[] }>('dashboard/headers');
/** Host → webview: one or more runs' checkpoint lists, whole. */
export const CheckpointsNotification = ipcNotification<{ lists: RunCheckpoints[] }>('dashboard/checkpoints');
/** Webview → host: Cancel / Rerun With Changes of a run. */
export const RunActionRequest = ipcRequest<{ run: number; action: 'cancel' | 'rerun' }, null>('dashboard/runAction');
/** Webview → host: Test / Save to Repository of a checkpoint. */
export const CheckpointActionRequest = ipcRequest<{ run: number; checkpointId: string; action: 'test' | 'save' }, null>('dashboard/checkpointAction');
/** Webview → host: Export CSV (the host has every point; it opens the save dialog). Resolves with the path or null. */
export const ExportCsvRequest = ipcRequest<Record<string, never>, { path: string | null }>('dashboard/exportCsv');
/** Webview → host: a chart's PNG (data: URL) to save through the host's dialog. */
export const SavePngRequest = ipcRequest<{ chartId: string; title: string; dataUrl: string }, { path: string | null }>('dashboard/savePng');
/** Webview → host: the settings changed (the host keeps them for the serializer's state and for tests). */
export const SettingsChangedNotification = ipcNotification<{ settings: ChartSettings }>('dashboard/settingsChanged');
/** Host → webview: what the charts hold and the list shows (tests). */
export const InspectRequest = ipcRequest<Record<string, never>, InspectResult>('dashboard/inspect');
/** Host → webview: apply settings as the toolbar does (tests); answered with the settings now. */
export const ApplySettingsRequest = ipcRequest<{ settings: Partial<ChartSettings> }, ChartSettings>('dashboard/applySettings');
/** Host → webview: a chart's PNG as a data: URL (tests). */
export const ChartPngRequest = ipcRequest<{ chartId: string }, { dataUrl: string }>('dashboard/chartPng');

// ---------------------------------------------------------------------------------------------------------
// The strings

/** Every string the dashboard webview shows; the host sends their translations (src/dashboardStrings.ts). */
export const DASHBOARD_STRING_KEYS = [
  'loading',
  'loadingHistory',
  'model',
  'status',
  'progress',
  'progress.value',
  'epoch',
  'elapsed',
  'eta',
  'eta.done',
  'tokens',
  'settings',
  'action.cancel',
  'action.rerun',
  'action.test',
  'action.save',
  'action.exportCsv',
  'action.png',
  'action.resetZoom',
  'toolbar.smoothing',
  'toolbar.logScale',
  'toolbar.xAxis',
  'xAxis.step',
  'xAxis.time',
  'chart.loss',
  'chart.accuracy',
  'chart.learning_rate',
  'chart.grad_norm',
  'chart.tokens_per_second',
  'chart.gpu_memory',
  'chart.step',
  'chart.time',
  'chart.raw',
  'chart.zoomHint',
  'series.train_loss',
  'series.valid_loss',
  'series.train_mean_token_accuracy',
  'series.valid_mean_token_accuracy',
  'series.learning_rate',
  'series.grad_norm',
  'series.tokens_per_second',
  'series.gpu_memory',
  'checkpoints',
  'checkpoints.none',
  'checkpoint.step',
  'sample.prompt',
  'sample.reference',
  'sample.answer',
  'sample.none',
  'sample.system',
  'role.user',
  'role.assistant',
  'role.system',
  'noMetrics',
  'exported',
  'failed',
] as const;

/** A key of the dashboard's string table. */
export type DashboardStringKey = (typeof DASHBOARD_STRING_KEYS)[number];
