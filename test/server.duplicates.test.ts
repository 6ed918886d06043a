// The duplicate index of the language server on its own, including lines whose hashes collide.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DuplicateIndex } from '../server/duplicates';
import { Line } from '../server/lineModel';

/** A line with a given content, hash and place; the index compares contents through `text`. */
function line(text: string, hash: number, order: number): Line {
  const l = new Line(undefined, 0, 0, text, false);
  l.hash = hash;
  l.order = order;
  return l;
}

const index = (): DuplicateIndex => new DuplicateIndex((a, b) => a.text === b.text);

describe('duplicate index', () => {
  it('calls every later copy a duplicate of the earliest, and promotes the next copy when the original goes', () => {
    const dups = index();
    const a1 = line('a', 1, 10);
    const a2 = line('a', 1, 20);
    const a3 = line('a', 1, 30);
    for (const l of [a2, a3, a1]) dups.add(l);
    assert.equal(dups.duplicates, 2);
    assert.deepEqual([a1.dup, a2.dup, a3.dup], [false, true, true]);
    assert.equal(dups.originalOf(a3), a1);
    dups.remove(a1);
    assert.equal(dups.duplicates, 1);
    assert.equal(a2.dup, false);
    assert.equal(dups.originalOf(a3), a2);
    dups.remove(a3);
    assert.equal(dups.duplicates, 0);
    assert.equal(dups.originalOf(a2), undefined);
  });

  it('tells colliding hashes apart by content', () => {
    const dups = index();
    const a1 = line('a', 7, 1);
    const b1 = line('b', 7, 2);
    const a2 = line('a', 7, 3);
    const b2 = line('b', 7, 4);
    for (const l of [a1, b1, a2, b2]) dups.add(l);
    assert.equal(dups.duplicates, 2);
    assert.deepEqual([a1.dup, b1.dup, a2.dup, b2.dup], [false, false, true, true]);
    assert.equal(dups.originalOf(a2), a1);
    assert.equal(dups.originalOf(b2), b1);
    assert.equal(dups.sameAs(b2), b1);
    dups.remove(b1);
    assert.equal(dups.duplicates, 1);
    assert.equal(b2.dup, false);
    dups.remove(a1);
    dups.remove(a2);
    assert.equal(dups.duplicates, 0);
    assert.equal(dups.sameAs(b2), undefined);
  });

  it('makes a line inserted before the original the new original', () => {
    const dups = index();
    const later = line('x', 3, 50);
    dups.add(later);
    const earlier = line('x', 3, 5);
    dups.add(earlier);
    assert.equal(later.dup, true);
    assert.equal(earlier.dup, false);
    assert.equal(dups.duplicates, 1);
  });
});
