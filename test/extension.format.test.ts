import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { baseName, convertSummary, formatCompact, formatCount, formatMean, plural } from '../src/format';

describe('formatCompact', () => {
  const table: [number, string][] = [
    [0, '0'],
    [7, '7'],
    [999, '999'],
    [1000, '1k'],
    [1049, '1k'],
    [1050, '1.1k'],
    [12_345, '12.3k'],
    [123_456, '123k'],
    [999_499, '999k'],
    [999_950, '1M'],
    [2_100_000, '2.1M'],
    [2_149_999, '2.1M'],
    [45_000_000, '45M'],
    [999_999_999, '1B'],
    [3_250_000_000, '3.3B'],
    [-12_345, '-12.3k'],
    [Number.NaN, '—'],
  ];
  for (const [value, expected] of table) {
    it(`${value} → ${expected}`, () => assert.equal(formatCompact(value), expected));
  }
});

describe('counts and nouns', () => {
  it('groups thousands the same way on every machine', () => {
    assert.equal(formatCount(12_345), '12,345');
    assert.equal(formatCount(1_234_567.6), '1,234,568');
    assert.equal(formatCount(Number.POSITIVE_INFINITY), '—');
  });
  it('prints a mean with one decimal unless it is whole', () => {
    assert.equal(formatMean(3), '3');
    assert.equal(formatMean(3.14159), '3.1');
    assert.equal(formatMean(12_345.67), '12,345.7');
  });
  it('chooses singular or plural', () => {
    assert.equal(plural(1, 'error'), '1 error');
    assert.equal(plural(0, 'error'), '0 errors');
    assert.equal(plural(12_340, 'example'), '12,340 examples');
    assert.equal(plural(2, 'line was', 'lines were'), '2 lines were');
  });
});

describe('baseName', () => {
  it('takes the last path segment of a uri, decoded', () => {
    assert.equal(baseName('file:///home/me/data/train.jsonl'), 'train.jsonl');
    assert.equal(baseName('file:///home/me/my%20data/%E4%B8%AD%E6%96%87.jsonl'), '中文.jsonl');
    assert.equal(baseName('untitled:Untitled-1'), 'untitled:Untitled-1');
    assert.equal(baseName('file:///c%3A/x/a.ndjson?query#frag'), 'a.ndjson');
  });
  it('keeps a name that is not valid percent-encoding as it is', () => {
    assert.equal(baseName('file:///x/100%.jsonl'), '100%.jsonl');
  });
});

describe('convertSummary', () => {
  it('says how many lines changed form and how many were left', () => {
    assert.equal(convertSummary({ converted: 12, unrecognised: 0 }), 'Converted 12 lines to messages format.');
    assert.equal(convertSummary({ converted: 1, unrecognised: 0 }), 'Converted 1 line to messages format.');
    assert.equal(
      convertSummary({ converted: 3, unrecognised: 2 }),
      'Converted 3 lines to messages format. 2 lines left unchanged: form not recognised.',
    );
    assert.equal(convertSummary({ converted: 0, unrecognised: 0 }), 'Nothing converted: no line is in ShareGPT or Alpaca form.');
    assert.equal(
      convertSummary({ converted: 0, unrecognised: 1 }),
      'Nothing converted: no line is in ShareGPT or Alpaca form. 1 line left unchanged: form not recognised.',
    );
  });
});
