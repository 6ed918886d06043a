import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeLineRanges, sameLineRanges } from '../src/lineRanges';

describe('mergeLineRanges', () => {
  const table: { name: string; input: [number, number][]; expected: [number, number][] }[] = [
    { name: 'nothing', input: [], expected: [] },
    { name: 'one range', input: [[10, 50]], expected: [[10, 50]] },
    { name: 'sorted', input: [[100, 120], [10, 50]], expected: [[10, 50], [100, 120]] },
    { name: 'overlapping ranges merge', input: [[10, 50], [40, 90]], expected: [[10, 90]] },
    { name: 'touching ranges merge', input: [[10, 50], [50, 60]], expected: [[10, 60]] },
    { name: 'a range inside another', input: [[10, 90], [20, 30]], expected: [[10, 90]] },
    { name: 'empty ranges are dropped', input: [[5, 5], [7, 3], [1, 2]], expected: [[1, 2]] },
  ];
  for (const { name, input, expected } of table) {
    it(name, () => {
      const merged = mergeLineRanges(input.map(([start, end]) => ({ start, end })));
      assert.deepEqual(merged.map((r) => [r.start, r.end]), expected);
    });
  }
  it('does not change its input', () => {
    const input = [{ start: 10, end: 50 }, { start: 40, end: 90 }];
    mergeLineRanges(input);
    assert.deepEqual(input, [{ start: 10, end: 50 }, { start: 40, end: 90 }]);
  });
});

describe('sameLineRanges', () => {
  it('compares element by element', () => {
    assert.equal(sameLineRanges([{ start: 1, end: 2 }], [{ start: 1, end: 2 }]), true);
    assert.equal(sameLineRanges([{ start: 1, end: 2 }], [{ start: 1, end: 3 }]), false);
    assert.equal(sameLineRanges([], [{ start: 1, end: 2 }]), false);
  });
});
