// The New Training Run form's merge of the host's values with what the user typed that the host has not seen yet
// (webview/newRun/edits.ts): a model chosen a moment before typing must not undo the typing when the host's new
// defaults for that model arrive after it; and the other way (src/newRunModel.ts PostedValues): values the webview
// sent before it took the host's latest must not undo the host's change (a dataset picked in the dialog).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyValues, PostedValues } from '../src/newRunModel';
import { keepEdits } from '../webview/newRun/edits';
import type { FormValues } from '../webview/protocol';

function values(change: (v: FormValues) => void): FormValues {
  const v = emptyValues();
  v.backend = 'Local (this machine)';
  v.model = 'tiny-qwen2-1m';
  v.settings.n_epochs = '3';
  v.settings.learning_rate = '0.0002';
  change(v);
  return v;
}

describe('keeping edits the host has not seen', () => {
  it('keeps typed fields and takes the host\'s for the others', () => {
    const base = values(() => undefined);
    // Typed since: a name and 2 epochs (a touched setting).
    const local = values((v) => {
      v.name = 'ui-run';
      v.settings.n_epochs = '2';
      v.touched.push('n_epochs');
    });
    // The host's new values, computed before it saw that typing: another model's defaults, a dataset it chose.
    const incoming = values((v) => {
      v.model = 'tiny-qwen2-4m';
      v.settings.n_epochs = '5';
      v.settings.learning_rate = '0.0001';
      v.dataset = { kind: 'local', path: '/work/train.jsonl' };
    });
    const merged = keepEdits(base, local, incoming);
    assert.equal(merged.name, 'ui-run');
    assert.equal(merged.settings.n_epochs, '2');
    assert.deepEqual(merged.touched, ['n_epochs']);
    assert.equal(merged.model, 'tiny-qwen2-4m');
    assert.equal(merged.settings.learning_rate, '0.0001');
    assert.deepEqual(merged.dataset, { kind: 'local', path: '/work/train.jsonl' });
    // Nothing of the inputs is shared with the result.
    merged.settings.n_epochs = '9';
    assert.equal(incoming.settings.n_epochs, '5');
  });

  it('keeps a model or backend the user picked over the host\'s, and an open "More settings"', () => {
    const base = values(() => undefined);
    const local = values((v) => {
      v.model = 'tiny-qwen2-4m';
      v.moreOpen = true;
    });
    const incoming = values((v) => {
      v.settings.learning_rate = '0.0003';
    });
    const merged = keepEdits(base, local, incoming);
    assert.equal(merged.model, 'tiny-qwen2-4m');
    assert.equal(merged.moreOpen, true);
    assert.equal(merged.settings.learning_rate, '0.0003');
  });

  it('is the host\'s values when nothing was typed', () => {
    const base = values(() => undefined);
    const incoming = values((v) => {
      v.gpus = '2';
      v.settings.n_epochs = '4';
    });
    assert.deepEqual(keepEdits(base, structuredClone(base), incoming), incoming);
  });
});

describe('the host taking values the webview sent', () => {
  it('takes them whole when the webview had the host\'s latest revision', () => {
    const posted = new PostedValues();
    const shown = values(() => undefined);
    posted.posted(3, shown);
    const sent = values((v) => (v.name = 'typed'));
    assert.equal(posted.fromWebview(sent, 3, 3, shown), sent);
  });

  it('keeps the host\'s later change when the webview\'s values were sent from an older revision', () => {
    const posted = new PostedValues();
    const shown = values(() => undefined);
    posted.posted(3, shown);
    // The host picks a dataset (revision 4) while the webview's typing, made on revision 3, is on its way.
    const current = values((v) => (v.dataset = { kind: 'local', path: '/work/picked.jsonl' }));
    posted.posted(4, current);
    posted.posted(4, values(() => undefined));
    const sent = values((v) => {
      v.settings.n_epochs = '2';
      v.touched.push('n_epochs');
    });
    const taken = posted.fromWebview(sent, 3, 4, current);
    assert.deepEqual(taken.dataset, { kind: 'local', path: '/work/picked.jsonl' });
    assert.equal(taken.settings.n_epochs, '2');
    assert.deepEqual(taken.touched, ['n_epochs']);
  });

  it('remembers only the last revisions, and takes values whole from one it forgot', () => {
    const posted = new PostedValues(2);
    for (let revision = 1; revision <= 3; revision++) posted.posted(revision, values(() => undefined));
    const current = values((v) => (v.gpus = '2'));
    const sent = values((v) => (v.name = 'typed'));
    assert.equal(posted.fromWebview(sent, 1, 3, current), sent, 'revision 1 was forgotten');
    assert.equal(posted.fromWebview(sent, 2, 3, current).gpus, '2');
  });
});
