// The "New Training Run" form in the webview: renders the view the host sends (webview/protocol.ts) and reports
// what the user types. It holds no logic of its own beyond the DOM: validation, defaults and the summary come
// from the host, which owns them (src/newRunModel.ts). The values are kept with setState, so a hidden or
// reloaded form comes back as it was.
import {
  provideVSCodeDesignSystem,
  vsCodeButton,
  vsCodeCheckbox,
  vsCodeDivider,
  vsCodeDropdown,
  vsCodeOption,
  vsCodeProgressRing,
  vsCodeTextField,
} from '@vscode/webview-ui-toolkit';
import {
  CancelUploadNotification,
  ChooseDatasetRequest,
  MAIN_FIELDS,
  MORE_FIELDS,
  OpenFindingRequest,
  ReadyRequest,
  RefreshBackendNotification,
  START_TIMEOUT_MS,
  StartRequest,
  ValuesChangedNotification,
  ViewNotification,
  format,
  type Choice,
  type FieldKey,
  type FormValues,
  type SettingKey,
  type StringKey,
  type ViewModel,
} from '../protocol';
import { byId, connectToHost, el } from '../host';
import { keepEdits } from './edits';

provideVSCodeDesignSystem().register(vsCodeButton(), vsCodeTextField(), vsCodeDropdown(), vsCodeOption(), vsCodeCheckbox(), vsCodeProgressRing(), vsCodeDivider());

const { vscode, ipc } = connectToHost();

/** An element with a `value` (the toolkit's text fields and drop-downs). */
type ValueElement = HTMLElement & { value: string };
type CheckElement = HTMLElement & { checked: boolean };

let strings: Record<StringKey, string>;
let view: ViewModel;
let values: FormValues;
let appliedRevision = -1;
/** The host's values as last taken (what the user's edits are measured from), and the count of edits made. */
let base: FormValues | undefined;
let edits = 0;
let changeTimer: ReturnType<typeof setTimeout> | undefined;
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

function t(key: StringKey, ...args: (string | number)[]): string {
  return format(strings[key], ...args);
}

/** Keeps the values (setState) and tells the host, a moment after the last keystroke. */
function changed(): void {
  edits++;
  vscode.setState(values);
  if (changeTimer !== undefined) clearTimeout(changeTimer);
  changeTimer = setTimeout(() => {
    changeTimer = undefined;
    ipc.notify(ValuesChangedNotification, { values, edit: edits, revision: appliedRevision });
  }, 120);
}

/** A labelled field: the label bound to the control, its explanation and its error (read by screen readers). */
function field(key: FieldKey, control: HTMLElement, help: string): HTMLElement {
  control.id = `f-${key}`;
  control.setAttribute('aria-describedby', `h-${key} e-${key}`);
  return el(
    'div',
    { class: 'field', 'data-field': key },
    el('label', { id: `l-${key}`, for: `f-${key}` }, t(`field.${key}` as StringKey)),
    control,
    el('div', { class: 'help', id: `h-${key}` }, help, el('span', { class: 'default', id: `d-${key}` })),
    el('div', { class: 'error', id: `e-${key}`, role: 'alert' }),
  );
}

function textField(key: SettingKey | 'name', get: () => string, set: (text: string) => void): HTMLElement {
  const input = el('vscode-text-field', { 'aria-labelledby': `l-${key}` }) as ValueElement;
  input.addEventListener('input', () => {
    set(input.value);
    if (key !== 'name' && !values.touched.includes(key)) values.touched.push(key);
    changed();
  });
  input.dataset.get = key;
  (input as unknown as { read: () => string }).read = get;
  return input;
}

function dropdown(key: FieldKey, onChange: (value: string) => void): ValueElement {
  const select = el('vscode-dropdown', { 'aria-labelledby': `l-${key}` }) as ValueElement;
  select.addEventListener('change', () => {
    onChange(select.value);
    changed();
  });
  return select;
}

function setting(key: SettingKey): HTMLElement {
  if (key === 'lr_scheduler' || key === 'training_type') {
    const select = dropdown(key, (value) => {
      values.settings[key] = value;
      if (!values.touched.includes(key)) values.touched.push(key);
    });
    if (key === 'lr_scheduler') for (const s of ['cosine', 'linear', 'constant']) select.append(el('vscode-option', { value: s }, s));
    return field(key, select, t(`help.${key}` as StringKey));
  }
  if (key === 'lora_target_modules') {
    const group = el('div', { class: 'checks', role: 'group', 'aria-labelledby': `l-${key}` });
    for (const target of TARGETS) {
      const box = el('vscode-checkbox', { 'data-target': target }, target) as CheckElement;
      box.addEventListener('change', () => {
        const chosen = TARGETS.filter((name) => (group.querySelector(`[data-target="${name}"]`) as CheckElement).checked);
        values.settings.lora_target_modules = chosen.join(',');
        if (!values.touched.includes(key)) values.touched.push(key);
        changed();
      });
      group.append(box);
    }
    return field(key, group, t(`help.${key}` as StringKey));
  }
  return field(key, textField(key, () => values.settings[key], (text) => (values.settings[key] = text)), t(`help.${key}` as StringKey));
}

function build(): void {
  const app = byId('app');
  app.replaceChildren();
  const backend = dropdown('backend', (value) => (values.backend = value));
  const model = dropdown('model', (value) => (values.model = value));
  const gpus = dropdown('gpus', (value) => (values.gpus = value));
  const task = el('vscode-dropdown', { disabled: '' }, el('vscode-option', { value: 'text' }, t('task.textGeneration')));
  const more = el('details', { id: 'more' }, el('summary', {}, t('section.more')), ...MORE_FIELDS.map(setting));
  more.addEventListener('toggle', () => {
    values.moreOpen = (more as HTMLDetailsElement).open;
    changed();
  });
  const choose = el('vscode-button', { appearance: 'secondary', id: 'choose' }, t('action.chooseFile'));
  choose.addEventListener('click', () => void ipc.request(ChooseDatasetRequest, {}, 10 * 60_000).catch(showError));
  const refresh = el('vscode-button', { appearance: 'icon', id: 'refresh', 'aria-label': t('action.refresh'), title: t('action.refresh') }, '↻');
  refresh.addEventListener('click', () => ipc.notify(RefreshBackendNotification, null));
  const start = el('vscode-button', { id: 'start' }, t('action.start'));
  start.addEventListener('click', () => void startTraining());
  const cancel = el('vscode-button', { appearance: 'secondary', id: 'cancel', hidden: '' }, t('action.cancel'));
  cancel.addEventListener('click', () => ipc.notify(CancelUploadNotification, null));

  app.append(
    el('h1', {}, t('title')),
    el('p', { id: 'rerun', class: 'note', hidden: '' }),
    el('div', { id: 'backendState', class: 'note', role: 'status' }),
    el('section', { 'aria-labelledby': 's-run' },
      el('h2', { id: 's-run' }, t('section.run')),
      field('name', textField('name', () => values.name, (text) => (values.name = text)), t('help.name')),
      el('div', { class: 'field' }, el('label', { id: 'l-task' }, t('field.task')), task),
      el('div', { class: 'row' }, field('backend', backend, t('help.backend')), refresh),
      field('model', model, t('help.model')),
      setting('training_type'),
      field('gpus', gpus, t('help.gpus')),
    ),
    el('vscode-divider'),
    el('section', { 'aria-labelledby': 's-data' },
      el('h2', { id: 's-data' }, t('section.data')),
      el('div', { class: 'field', 'data-field': 'dataset' },
        el('div', { class: 'row' }, el('span', { id: 'datasetLabel', class: 'dataset' }), choose),
        el('div', { class: 'help' }, t('help.dataset')),
        el('div', { class: 'error', id: 'e-dataset', role: 'alert' }),
      ),
      el('div', { id: 'datasetState', role: 'status' }),
      el('ul', { id: 'findings', class: 'findings' }),
    ),
    el('vscode-divider'),
    el('section', { 'aria-labelledby': 's-settings' }, el('h2', { id: 's-settings' }, t('section.settings')), ...MAIN_FIELDS.map(setting), more),
    el('vscode-divider'),
    el('section', { 'aria-labelledby': 's-summary' }, el('h2', { id: 's-summary' }, t('section.summary')), el('table', { id: 'summary', class: 'summary' })),
    el('div', { class: 'actions' }, start, cancel, el('vscode-progress-ring', { id: 'ring', hidden: '' }), el('span', { id: 'launchState', role: 'status' })),
    el('div', { id: 'launchError', class: 'error', role: 'alert' }),
  );
  app.setAttribute('aria-busy', 'false');
}

function setOptions(select: ValueElement, choices: readonly Choice[], selected: string): void {
  const key = JSON.stringify(choices);
  if (select.dataset.options !== key) {
    select.dataset.options = key;
    select.replaceChildren(
      ...choices.map((c) => {
        const option = el('vscode-option', { value: c.value }, c.detail ? `${c.label} — ${c.detail}` : c.label);
        if (c.disabled === true) option.setAttribute('disabled', '');
        return option;
      }),
    );
  }
  if (select.value !== selected) select.value = selected;
}

function applyValues(): void {
  for (const input of document.querySelectorAll<ValueElement>('vscode-text-field')) {
    const read = (input as unknown as { read?: () => string }).read;
    if (read !== undefined && input.value !== read()) input.value = read();
  }
  const targets = values.settings.lora_target_modules.split(',');
  for (const box of document.querySelectorAll<CheckElement>('[data-target]')) box.checked = targets.includes(box.dataset.target ?? '');
  (byId<ValueElement>('f-lr_scheduler')).value = values.settings.lr_scheduler;
  (byId('more') as HTMLDetailsElement).open = values.moreOpen;
}

function render(): void {
  if (view.valuesRevision !== appliedRevision) {
    appliedRevision = view.valuesRevision;
    // Edits the host has not seen yet (typed a moment ago, or still on their way) stay as typed.
    values = base !== undefined && view.valuesEdit < edits ? keepEdits(base, values, view.values) : structuredClone(view.values);
    base = structuredClone(view.values);
    // "More settings" opened a moment ago may not have reached the host yet: its values never close it.
    values.moreOpen ||= (byId('more') as HTMLDetailsElement).open;
    vscode.setState(values);
    applyValues();
  }
  setOptions(byId('f-backend'), view.backends, values.backend);
  setOptions(byId('f-model'), view.models, values.model);
  setOptions(byId('f-training_type'), view.trainingTypes, values.settings.training_type);
  setOptions(byId('f-gpus'), view.compute, values.gpus);
  const backendState = byId('backendState');
  backendState.textContent = view.backendState.error ?? (view.backendState.loading ? strings.loading : '');
  backendState.classList.toggle('error', view.backendState.error !== undefined);
  const rerun = byId('rerun');
  rerun.hidden = view.rerunOf === undefined;
  rerun.textContent = view.rerunOf === undefined ? '' : t('rerunOf', view.rerunOf);

  for (const node of document.querySelectorAll<HTMLElement>('.error[id^="e-"]')) {
    const key = node.id.slice(2) as FieldKey;
    const message = view.fieldErrors[key] ?? '';
    node.textContent = message;
    document.getElementById(`f-${key}`)?.setAttribute('aria-invalid', message === '' ? 'false' : 'true');
  }
  for (const node of document.querySelectorAll<HTMLElement>('.default')) {
    const key = node.id.slice(2) as SettingKey;
    const value = view.defaults[key];
    node.textContent = value === undefined || value === '' ? '' : ` (${t('default.is', value)})`;
  }
  renderDataset();
  const summary = byId('summary');
  summary.replaceChildren(...view.summary.rows.map((row) => el('tr', {}, el('th', { scope: 'row' }, row.label), el('td', {}, row.value))));

  const start = byId('start');
  if (view.canStart) start.removeAttribute('disabled');
  else start.setAttribute('disabled', '');
  start.title = view.blockedReason ?? '';
  const busy = view.launch.phase === 'uploading' || view.launch.phase === 'creating';
  byId('cancel').hidden = view.launch.phase !== 'uploading';
  byId('ring').hidden = !busy;
  byId('launchState').textContent =
    view.launch.phase === 'uploading' ? t('launch.uploading', Math.round(view.launch.progress * 100)) : view.launch.phase === 'creating' ? t('launch.creating') : view.launch.phase === 'done' ? t('launch.done') : (view.blockedReason ?? '');
  byId('launchError').textContent = view.launch.error ?? '';
}

function renderDataset(): void {
  const d = view.dataset;
  const label = byId('datasetLabel');
  const state = byId('datasetState');
  const list = byId('findings');
  list.replaceChildren();
  if (d === null) {
    label.textContent = t('dataset.none');
    state.textContent = '';
    return;
  }
  label.textContent = d.label;
  if (d.state === 'remote') {
    state.textContent = t('dataset.remote', d.label);
    return;
  }
  if (d.state === 'checking') {
    state.textContent = `${t('dataset.checking', d.label)} ${Math.round(d.progress * 100)}%`;
    return;
  }
  if (d.state === 'failed') {
    state.textContent = d.failure ?? '';
    return;
  }
  const lines = [t('dataset.stats', (d.examples ?? 0).toLocaleString(), (d.tokens ?? 0).toLocaleString(), (d.trainedTokens ?? 0).toLocaleString())];
  if (d.estimated === true) lines.push(t('dataset.estimated'));
  if ((d.overLength ?? 0) > 0) lines.push(t('dataset.overLength', d.overLength ?? 0));
  if ((d.errors ?? 0) > 0) lines.push(t('dataset.errors', d.errors ?? 0));
  else if ((d.warnings ?? 0) > 0) lines.push(t('dataset.warnings', d.warnings ?? 0));
  state.replaceChildren(...lines.map((line) => el('div', {}, line)));
  for (const f of d.findings) {
    const link = el('a', { href: '#', class: f.severity }, t('dataset.lineColumn', f.line + 1, f.column + 1));
    link.addEventListener('click', (event) => {
      event.preventDefault();
      void ipc.request(OpenFindingRequest, { line: f.line, column: f.column }).catch(showError);
    });
    list.append(el('li', {}, link, ` ${f.code}: ${f.message}`));
  }
  if (d.totalFindings > d.findings.length) list.append(el('li', {}, t('dataset.more', d.totalFindings - d.findings.length)));
}

function showError(error: unknown): void {
  byId('launchError').textContent = error instanceof Error ? error.message : String(error);
}

async function startTraining(): Promise<void> {
  if (changeTimer !== undefined) {
    clearTimeout(changeTimer);
    changeTimer = undefined;
  }
  try {
    await ipc.request(StartRequest, { values }, START_TIMEOUT_MS);
  } catch (error) {
    // The host shows the failure in the view it sends; a field's error also moves the focus there.
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'launch') document.getElementById(`f-${code}`)?.focus();
  }
}

ipc.onNotification(ViewNotification, ({ view: next }) => {
  if (strings === undefined) return;
  view = next;
  render();
});

async function main(): Promise<void> {
  const saved = vscode.getState() as FormValues | null | undefined;
  const snapshot = await ipc.request(ReadyRequest, { saved: saved ?? null });
  strings = snapshot.strings;
  view = snapshot.view;
  values = structuredClone(view.values);
  document.documentElement.lang = document.documentElement.lang || 'en';
  build();
  render();
}

void main().catch((error: unknown) => {
  byId('app').textContent = error instanceof Error ? error.message : String(error);
});
