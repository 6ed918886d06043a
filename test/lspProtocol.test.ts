import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyCounts } from '../common/dataset/fileCheck';
import { isConvertDatasetResult, isDatasetStatistics, isDatasetStatus, type DatasetStatistics } from '../common/lspProtocol';

const distribution = { count: 2, min: 1, max: 3, mean: 2, median: 2, p5: 1, p95: 3 };
const statistics: DatasetStatistics = {
  uri: 'file:///a.jsonl',
  live: true,
  lines: 2,
  examples: 2,
  validExamples: 2,
  blank: 0,
  errors: 0,
  warnings: 0,
  byCode: emptyCounts(),
  messagesPerExample: distribution,
  tokensPerExample: distribution,
  trainedTokensPerExample: distribution,
  tokenizedExamples: 2,
  overLength: 0,
  maxSequenceLength: 4096,
  epochTokens: 4,
  epochTrainedTokens: 2,
};

describe('guards for what the client receives from the language server', () => {
  it('accept the declared shapes', () => {
    assert.ok(isDatasetStatistics(statistics));
    assert.ok(isDatasetStatus({ uri: 'file:///a.jsonl', examples: 1, errors: 0, warnings: 0, tokens: 10, counting: false, live: true }));
    assert.ok(isConvertDatasetResult({ converted: 3, unrecognised: 0 }));
  });

  it('refuse what is missing a field or has one of the wrong type', () => {
    for (const key of Object.keys(statistics)) {
      const broken: Record<string, unknown> = { ...statistics };
      delete broken[key];
      assert.equal(isDatasetStatistics(broken), false, `without ${key}`);
    }
    assert.equal(isDatasetStatistics({ ...statistics, tokensPerExample: { ...distribution, p95: '3' } }), false);
    assert.equal(isDatasetStatus({ uri: 'file:///a.jsonl', examples: '1', errors: 0, warnings: 0, tokens: 10, counting: false, live: true }), false);
    assert.equal(isDatasetStatus(null), false);
    assert.equal(isConvertDatasetResult([1, 2]), false);
  });
});
