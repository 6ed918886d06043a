// The "Test Checkpoint" chat in the webview: renders the views and streamed pieces the host sends
// (webview/chat/protocol.ts) and reports what the user does. The host owns the conversation and the
// generations; this side owns only the DOM, the fields being edited, and the copy kept with setState so that a
// reload (or a hidden panel shown again) comes back as it was.
import { IpcError, format } from '../protocol';
import { byId, connectToHost, el } from '../host';
import { renderMarkdown } from './markdown';
import {
  ChatClearRequest,
  ChatCompareRequest,
  ChatCopyRequest,
  ChatDeltaNotification,
  ChatEditNotification,
  ChatExportRequest,
  ChatReadyRequest,
  ChatRetryRequest,
  ChatSendRequest,
  ChatSnapshotRequest,
  ChatStopNotification,
  ChatViewNotification,
  EXPORT_TIMEOUT_MS,
  GENERATION_KEYS,
  type Answer,
  type ChatState,
  type ChatStringKey,
  type ChatView,
  type GenerationKey,
  type Side,
} from './protocol';

const { vscode, ipc } = connectToHost();

let strings: Record<ChatStringKey, string>;
let view: ChatView | undefined;
let lastSeq = 0;
let editTimer: ReturnType<typeof setTimeout> | undefined;
let saveTimer: ReturnType<typeof setTimeout> | undefined;
/** Answers whose Markdown must be drawn again at the next frame (streamed pieces arrive faster than frames). */
const dirty = new Set<string>();
let frameRequested = false;

function t(key: ChatStringKey, ...args: (string | number)[]): string {
  return format(strings[key], ...args);
}

function button(id: string, label: string, onClick: () => void, secondary = true): HTMLButtonElement {
  const b = el('button', { id, type: 'button', class: secondary ? 'secondary' : 'primary' }, label);
  b.addEventListener('click', onClick);
  return b;
}

function showError(error: unknown): void {
  const message = IpcError.is(error) || error instanceof Error ? error.message : String(error);
  const box = byId('error');
  box.textContent = message;
  box.hidden = false;
}

function clearError(): void {
  const box = byId('error');
  box.textContent = '';
  box.hidden = true;
}

/** Keeps the state for a reload: at once for views, at most twice a second while pieces stream. */
function save(now = false): void {
  if (view === undefined) return;
  if (now) {
    if (saveTimer !== undefined) clearTimeout(saveTimer);
    saveTimer = undefined;
    vscode.setState(view.state);
    return;
  }
  saveTimer ??= setTimeout(() => {
    saveTimer = undefined;
    if (view !== undefined) vscode.setState(view.state);
  }, 500);
}

function settingInput(key: GenerationKey): HTMLInputElement {
  return byId<HTMLInputElement>(`f-${key}`);
}

/** The fields' values now. */
function edits(): Pick<ChatState, 'system' | 'settings'> {
  const settings = { ...(view?.state.settings ?? ({} as ChatState['settings'])) };
  for (const key of GENERATION_KEYS) settings[key] = settingInput(key).value;
  return { system: byId<HTMLTextAreaElement>('system').value, settings };
}

function edited(): void {
  if (view !== undefined) Object.assign(view.state, edits());
  save();
  if (editTimer !== undefined) clearTimeout(editTimer);
  editTimer = setTimeout(() => {
    editTimer = undefined;
    ipc.notify(ChatEditNotification, edits());
  }, 150);
}

function build(): void {
  const app = byId('app');
  app.removeAttribute('aria-busy');
  const compare = el('select', { id: 'compare', 'aria-labelledby': 'l-compare' });
  compare.addEventListener('change', () => void ipc.request(ChatCompareRequest, { model: compare.value === '' ? null : compare.value }).catch(showError));
  const system = el('textarea', { id: 'system', rows: '2', 'aria-describedby': 'systemNote h-system', spellcheck: 'false' });
  system.addEventListener('input', edited);
  const fields = GENERATION_KEYS.map((key) => {
    const input = el('input', { id: `f-${key}`, type: 'text', inputmode: key === 'seed' ? 'numeric' : 'decimal', 'aria-describedby': `e-${key}`, spellcheck: 'false' });
    if (key === 'seed') input.placeholder = '—';
    input.addEventListener('input', edited);
    return el('div', { class: 'setting', 'data-field': key }, el('label', { for: `f-${key}` }, t(`field.${key}`)), input, el('div', { class: 'error', id: `e-${key}`, role: 'alert' }));
  });
  const reset = button('reset', t('action.resetDefaults'), () => {
    if (view === undefined) return;
    for (const key of GENERATION_KEYS) settingInput(key).value = view.defaults[key];
    edited();
  });
  const composer = el('textarea', { id: 'composer', rows: '3', placeholder: t('composer.placeholder'), 'aria-label': t('composer.placeholder'), 'aria-describedby': 'composerHint' });
  composer.addEventListener('keydown', (event) => {
    // Enter sends; Shift+Enter is a new line; Enter that confirms an input method's composition is not a send.
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      send();
    }
  });
  const exportSide = el('select', { id: 'exportSide', 'aria-label': t('export.side') });
  app.replaceChildren(
    el(
      'header',
      { class: 'top' },
      el('div', { class: 'target' }, el('span', { class: 'muted' }, t('model')), el('strong', { id: 'targetLabel' }), el('code', { id: 'targetModel', class: 'muted' })),
      el('div', { class: 'compare' }, el('label', { id: 'l-compare', for: 'compare' }, t('compare.label')), compare),
    ),
    el(
      'details',
      { id: 'settings', class: 'panel', open: '' },
      el('summary', {}, `${t('section.system')} · ${t('section.settings')}`),
      el('div', { class: 'system' }, el('label', { for: 'system' }, t('section.system')), system, el('div', { class: 'note', id: 'systemNote' }), el('div', { class: 'help', id: 'h-system' }, t('help.system'))),
      el('div', { class: 'settings-grid' }, ...fields),
      el('div', { class: 'settings-foot' }, el('span', { class: 'help' }, t('help.seed')), reset),
    ),
    // No aria-live here: streamed answers redraw many times a second; #liveStatus says when one starts and ends.
    el('section', { id: 'conversation', 'aria-label': t('model') }),
    el('div', { id: 'liveStatus', class: 'sr-only', role: 'status' }),
    el('div', { id: 'error', class: 'error-box', role: 'alert', hidden: '' }),
    el(
      'footer',
      { class: 'composer' },
      composer,
      el(
        'div',
        { class: 'composer-actions' },
        el('span', { id: 'composerHint', class: 'help' }, t('composer.hint')),
        el('span', { class: 'spacer' }),
        button('clear', t('action.clear'), () => void ipc.request(ChatClearRequest, null).then(clearError, showError)),
        button('retry', t('action.retry'), () => void ipc.request(ChatRetryRequest, null).then(clearError, showError)),
        button('stop', t('action.stop'), () => ipc.notify(ChatStopNotification, null)),
        button('send', t('action.send'), send, false),
      ),
      el(
        'div',
        { class: 'export' },
        el('span', { class: 'muted' }, t('export.label')),
        exportSide,
        button('exportCopy', t('action.exportCopy'), () => exportLine('copy')),
        button('exportAppend', t('action.exportAppend'), () => exportLine('append')),
        el('span', { id: 'exportState', class: 'help', role: 'status' }),
      ),
    ),
  );
}

function send(): void {
  if (view === undefined) return;
  const composer = byId<HTMLTextAreaElement>('composer');
  const text = composer.value;
  if (text.trim() === '' || view.busy) return;
  if (editTimer !== undefined) clearTimeout(editTimer);
  editTimer = undefined;
  clearError();
  ipc.request(ChatSendRequest, { text, ...edits() }).then(
    () => {
      // Cleared only once the host took it: a refused prompt (a wrong setting) stays to be sent again.
      if (composer.value === text) composer.value = '';
    },
    // A wrong setting is also marked at its field by the view that follows.
    showError,
  );
}

function exportLine(action: 'copy' | 'append'): void {
  const side = Number(byId<HTMLSelectElement>('exportSide').value) === 1 ? 1 : 0;
  const status = byId('exportState');
  status.textContent = '';
  clearError();
  ipc.request(ChatExportRequest, { side, action }, EXPORT_TIMEOUT_MS).then(
    (result) => {
      if (result === null) return;
      status.textContent = result.file === undefined ? t('export.copied') : t('export.appended', result.file);
    },
    showError,
  );
}

/** Adds a copy button to every code block of a rendered answer. */
function addCodeButtons(body: HTMLElement): void {
  for (const block of body.querySelectorAll<HTMLElement>('.code-block')) {
    const head = block.querySelector('.code-head');
    const code = block.querySelector('code');
    if (head === null || code === null || head.querySelector('button') !== null) continue;
    const copy = el('button', { type: 'button', class: 'copy-code link' }, t('action.copyCode'));
    copy.addEventListener('click', () => copyText(code.textContent ?? '', copy));
    head.append(copy);
  }
}

function copyText(text: string, source: HTMLButtonElement): void {
  ipc.request(ChatCopyRequest, { text }).then(() => {
    const label = source.textContent;
    source.textContent = t('action.copied');
    setTimeout(() => (source.textContent = label), 1200);
  }, showError);
}

function answerKey(turn: number, side: Side): string {
  return `${turn}:${side}`;
}

function drawAnswerBody(body: HTMLElement, answer: Answer): void {
  body.innerHTML = renderMarkdown(answer.text);
  addCodeButtons(body);
  if (answer.state === 'streaming') caretHost(body).append(el('span', { class: 'caret', 'aria-hidden': 'true' }));
}

/** Where the streaming caret goes: at the end of the last paragraph, list item or code, not on a line of its own. */
function caretHost(body: HTMLElement): Element {
  let last = body.lastElementChild;
  if (last === null) return body;
  if (last.classList.contains('code-block')) return last.querySelector('code') ?? last;
  while ((last.tagName === 'UL' || last.tagName === 'OL' || last.tagName === 'BLOCKQUOTE') && last.lastElementChild !== null) last = last.lastElementChild;
  return last;
}

function answerElement(turnIndex: number, side: Side, answer: Answer, label: string): HTMLElement {
  const body = el('div', { class: 'answer-body markdown' });
  drawAnswerBody(body, answer);
  const stats = el('div', { class: 'answer-stats' });
  if (answer.state === 'streaming') stats.textContent = t('state.streaming');
  else stats.textContent = answer.stats ?? '';
  const status = el('div', { class: 'answer-status' });
  if (answer.state === 'failed') status.textContent = t('state.failed', answer.error ?? '');
  else if (answer.state === 'stopped') status.textContent = t('state.stopped');
  const copy = el('button', { type: 'button', class: 'copy-answer link' }, t('action.copy'));
  copy.addEventListener('click', () => copyText(answer.text, copy));
  if (answer.state === 'streaming' || answer.text === '') copy.hidden = true;
  return el(
    'article',
    { class: 'answer', 'data-turn': String(turnIndex), 'data-side': String(side), 'data-state': answer.state, 'aria-busy': String(answer.state === 'streaming') },
    el('div', { class: 'answer-head' }, el('span', { class: 'who' }, label), copy),
    body,
    status,
    stats,
  );
}

function drawConversation(): void {
  if (view === undefined) return;
  const box = byId('conversation');
  const pinned = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const { state } = view;
  box.replaceChildren();
  if (state.turns.length === 0) box.append(el('p', { class: 'empty' }, t('empty')));
  state.turns.forEach((turn, index) => {
    const answers = el('div', { class: `answers${turn.answers.length > 1 ? ' two' : ''}` });
    turn.answers.forEach((answer, side) => {
      const label = side === 0 ? state.target.label : (state.compare?.label ?? '');
      answers.append(answerElement(index, side === 1 ? 1 : 0, answer, label));
    });
    box.append(el('div', { class: 'turn', 'data-turn': String(index) }, el('div', { class: 'user' }, el('div', { class: 'who' }, t('role.user')), el('div', { class: 'user-text' }, turn.user)), answers));
  });
  dirty.clear();
  if (pinned) box.scrollTop = box.scrollHeight;
}

function applyView(next: ChatView): void {
  const first = view === undefined;
  view = next;
  lastSeq = next.seq;
  const { state } = next;
  byId('targetLabel').textContent = state.target.label;
  byId('targetModel').textContent = state.target.model;
  const compare = byId<HTMLSelectElement>('compare');
  const options = [el('option', { value: '' }, t('compare.none')), ...next.compareChoices.map((c) => el('option', { value: c.model, title: c.detail ?? c.model }, c.label))];
  if (state.compare !== null && !next.compareChoices.some((c) => c.model === state.compare?.model)) options.push(el('option', { value: state.compare.model }, state.compare.label));
  compare.replaceChildren(...options);
  compare.value = state.compare?.model ?? '';
  // Fields take the host's values when they are not being typed in (the host echoes what it was sent).
  const system = byId<HTMLTextAreaElement>('system');
  if (first || (document.activeElement !== system && editTimer === undefined)) system.value = state.system;
  for (const key of GENERATION_KEYS) {
    const input = settingInput(key);
    if (first || (document.activeElement !== input && editTimer === undefined)) input.value = state.settings[key];
    input.placeholder = key === 'seed' ? '—' : next.defaults[key];
    const error = next.settingsErrors[key] ?? '';
    byId(`e-${key}`).textContent = error;
    input.setAttribute('aria-invalid', String(error !== ''));
  }
  byId('systemNote').textContent = next.systemNote;
  const hasAnswers = state.turns.length > 0;
  byId<HTMLButtonElement>('send').disabled = next.busy;
  byId<HTMLButtonElement>('stop').disabled = !next.busy;
  byId<HTMLButtonElement>('retry').disabled = next.busy || !hasAnswers;
  byId<HTMLButtonElement>('clear').disabled = !hasAnswers;
  const sides = el('option', { value: '0' }, state.target.label);
  const exportSide = byId<HTMLSelectElement>('exportSide');
  const chosen = exportSide.value;
  const twoSides = state.compare !== null || state.turns.some((turn) => turn.answers.length > 1);
  exportSide.replaceChildren(sides, ...(twoSides ? [el('option', { value: '1' }, state.compare?.label ?? '2')] : []));
  exportSide.value = twoSides && chosen === '1' ? '1' : '0';
  exportSide.hidden = !twoSides;
  byId<HTMLButtonElement>('exportCopy').disabled = next.busy || !hasAnswers;
  byId<HTMLButtonElement>('exportAppend').disabled = next.busy || !hasAnswers;
  document.body.dataset.busy = String(next.busy);
  const lastAnswer = state.turns.at(-1)?.answers[0];
  byId('liveStatus').textContent = next.busy ? t('state.streaming') : lastAnswer?.state === 'stopped' ? t('state.stopped') : (lastAnswer?.stats ?? '');
  drawConversation();
  save(true);
}

function drawDirty(): void {
  frameRequested = false;
  if (view === undefined) return;
  const box = byId('conversation');
  const pinned = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  for (const key of dirty) {
    const [turn, side] = key.split(':').map(Number);
    const answer = view.state.turns[turn]?.answers[side];
    const body = box.querySelector<HTMLElement>(`.answer[data-turn="${turn}"][data-side="${side}"] .answer-body`);
    if (answer !== undefined && body !== null) drawAnswerBody(body, answer);
  }
  dirty.clear();
  if (pinned) box.scrollTop = box.scrollHeight;
}

async function resync(): Promise<void> {
  applyView(await ipc.request(ChatSnapshotRequest, null));
}

ipc.onNotification(ChatViewNotification, ({ view: next }) => applyView(next));
ipc.onNotification(ChatDeltaNotification, ({ seq, turn, side, piece, ttftMs }) => {
  if (view === undefined) return;
  const answer = view.state.turns[turn]?.answers[side];
  if (seq !== lastSeq + 1 || answer === undefined) {
    // A gap (a message lost while the panel was hidden, say): take the whole state rather than patch it.
    void resync().catch(showError);
    return;
  }
  lastSeq = seq;
  answer.text += piece;
  answer.ttftMs = ttftMs;
  dirty.add(answerKey(turn, side));
  save();
  if (!frameRequested) {
    frameRequested = true;
    requestAnimationFrame(drawDirty);
  }
});

async function start(): Promise<void> {
  const saved = vscode.getState();
  const snapshot = await ipc.request(ChatReadyRequest, { saved: (saved ?? null) as ChatState | null });
  strings = snapshot.strings;
  build();
  applyView(snapshot.view);
  byId<HTMLTextAreaElement>('composer').focus();
}

void start().catch((error: unknown) => {
  const app = byId('app');
  app.removeAttribute('aria-busy');
  app.replaceChildren(el('p', { class: 'error-box' }, error instanceof Error ? error.message : String(error)));
});
