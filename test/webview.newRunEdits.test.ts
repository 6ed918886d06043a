// The New Training Run form's merge of the host's values with what the user typed that the host has not seen yet
// (webview/newRun/edits.ts): a model chosen a moment before typing must not undo the typing when the host's new
// defaults for that model arrive after it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyValues } from '../src/newRunModel';
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
