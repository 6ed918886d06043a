import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DiskCheckTracker, SYNC_LIMIT_UTF16_UNITS, isDatasetPath, needsDiskCheck } from '../src/datasetFiles';

describe('isDatasetPath', () => {
  const table: [string, boolean][] = [
    ['/data/train.jsonl', true],
    ['/data/TRAIN.JSONL', true],
    ['/data/chats.ndjson', true],
    ['/data/train.json', false],
    ['/data/train.jsonl.bak', false],
    ['/data/jsonl', false],
  ];
  for (const [path, expected] of table) it(`${path} → ${expected}`, () => assert.equal(isDatasetPath(path), expected));
});

describe('needsDiskCheck', () => {
  const limit = SYNC_LIMIT_UTF16_UNITS;
  const table: { name: string; synced: boolean; sizeBytes: number | undefined; expected: boolean }[] = [
    { name: 'a synced document never, whatever its size', synced: true, sizeBytes: 10 * limit, expected: false },
    { name: 'an unsynced file over the limit in bytes', synced: false, sizeBytes: limit + 1, expected: true },
    { name: 'a 100 MB file', synced: false, sizeBytes: 100 * 2 ** 20, expected: true },
    { name: 'an unsynced file of exactly the limit: VS Code will sync it', synced: false, sizeBytes: limit, expected: false },
    { name: 'a small file not loaded yet (a background tab)', synced: false, sizeBytes: 1_000, expected: false },
    { name: 'a file that cannot be read', synced: false, sizeBytes: undefined, expected: false },
  ];
  for (const { name, synced, sizeBytes, expected } of table) {
    it(name, () => assert.equal(needsDiskCheck({ synced, sizeBytes }), expected));
  }
  it('the limit is 50 × 2^20', () => assert.equal(SYNC_LIMIT_UTF16_UNITS, 52_428_800));
});

describe('DiskCheckTracker', () => {
  const A = 'file:///a.jsonl';
  const B = 'file:///b.jsonl';

  it('inspects each tab once, and checks from disk only what needs it', () => {
    const tracker = new DiskCheckTracker();
    assert.deepEqual(tracker.update([A, B]), { inspect: [A, B], stop: [] });
    // Tabs change often (focus, dirty state): nothing new to look at.
    assert.deepEqual(tracker.update([A, B]), { inspect: [], stop: [] });
    assert.equal(tracker.inspected(A, true), true);
    assert.equal(tracker.inspected(B, false), false);
    assert.equal(tracker.inspected(A, true), false, 'once');
    assert.deepEqual(tracker.checking(), [A]);
  });

  it('stops the disk check when the last tab closes, and only for files checked from disk', () => {
    const tracker = new DiskCheckTracker();
    tracker.update([A, B]);
    tracker.inspected(A, true);
    tracker.inspected(B, false);
    assert.deepEqual(tracker.update([A]), { inspect: [], stop: [] });
    assert.deepEqual(tracker.update([]), { inspect: [], stop: [A] });
    assert.deepEqual(tracker.checking(), []);
    // Reopened: looked at afresh.
    assert.deepEqual(tracker.update([A]), { inspect: [A], stop: [] });
  });

  it('does not start a check for a tab that closed while it was being inspected', () => {
    const tracker = new DiskCheckTracker();
    tracker.update([A]);
    assert.deepEqual(tracker.update([]), { inspect: [], stop: [] });
    assert.equal(tracker.inspected(A, true), false);
    assert.deepEqual(tracker.checking(), []);
  });

  it('hands a file back to live checking once the editor syncs it', () => {
    const tracker = new DiskCheckTracker();
    tracker.update([A]);
    tracker.inspected(A, true);
    assert.equal(tracker.synced(A), true);
    assert.equal(tracker.synced(A), false, 'once');
    assert.deepEqual(tracker.checking(), []);
    assert.deepEqual(tracker.update([]), { inspect: [], stop: [] }, 'nothing to stop any more');
  });

  it('looks at a tab again when its document is closed behind it', () => {
    const tracker = new DiskCheckTracker();
    tracker.update([A]);
    tracker.inspected(A, false);
    assert.equal(tracker.unsynced(A), true);
    assert.equal(tracker.inspected(A, true), true);
    assert.equal(tracker.unsynced(B), false, 'not open in a tab');
    assert.equal(tracker.unsynced(A), false, 'already checked from disk');
  });
});
