import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DatasetStatus } from '../common/lspProtocol';
import { escapeMarkdown, statusLabel, statusText, statusTooltip } from '../src/statusText';

const base: DatasetStatus = {
  uri: 'file:///data/train.jsonl',
  examples: 12_345,
  errors: 0,
  warnings: 0,
  tokens: 2_100_000,
  counting: false,
  live: true,
};
const on = { countTokens: true };

describe('status-bar text', () => {
  const table: { name: string; status: Partial<DatasetStatus>; countTokens?: boolean; text: string }[] = [
    { name: 'a clean dataset, counted', status: {}, text: '$(check) 12,345 examples · 2.1M tokens' },
    {
      name: 'errors and warnings while counting',
      status: { errors: 3, warnings: 12, examples: 12_340, counting: true },
      text: '$(error) 3 errors $(warning) 12 warnings · 12,340 examples · counting tokens…',
    },
    { name: 'one error, singular', status: { errors: 1 }, text: '$(error) 1 error · 12,345 examples · 2.1M tokens' },
    { name: 'warnings only', status: { warnings: 1 }, text: '$(warning) 1 warning · 12,345 examples · 2.1M tokens' },
    { name: 'one example, few tokens', status: { examples: 1, tokens: 57 }, text: '$(check) 1 example · 57 tokens' },
    { name: 'token counting off: no tokens', status: { counting: true }, countTokens: false, text: '$(check) 12,345 examples' },
    { name: 'empty file', status: { examples: 0, errors: 1, tokens: 0 }, text: '$(error) 1 error · 0 examples · 0 tokens' },
  ];
  for (const { name, status, countTokens = true, text } of table) {
    it(name, () => assert.equal(statusText({ ...base, ...status }, { countTokens }), text));
  }

  it('reads without codicons for screen readers', () => {
    const status = { ...base, errors: 3, warnings: 12, counting: true };
    assert.equal(statusLabel(status, on), '3 errors, 12 warnings, 12,345 examples, counting tokens…');
    assert.equal(statusLabel(base, on), '12,345 examples, 2.1M tokens');
  });
});

describe('status-bar tooltip', () => {
  it('gives the exact counts and how the file is checked', () => {
    const tooltip = statusTooltip({ ...base, errors: 3, warnings: 1_234 }, on);
    assert.match(tooltip, /^\*\*train\\\.jsonl\*\* — checked as you type/);
    assert.match(tooltip, /\| Errors \| 3 \|/);
    assert.match(tooltip, /\| Warnings \| 1,234 \|/);
    assert.match(tooltip, /\| Tokens in valid examples \| 2,100,000 \|/);
    assert.match(tooltip, /Click for the dataset statistics\./);
  });
  it('says when the file is checked from disk and when tokens are still being counted', () => {
    const tooltip = statusTooltip({ ...base, live: false, counting: true, tokens: 500 }, on);
    assert.match(tooltip, /checked from disk/);
    assert.match(tooltip, /500 so far \(counting…\)/);
  });
  it('leaves tokens out when counting is off', () => {
    assert.doesNotMatch(statusTooltip(base, { countTokens: false }), /Tokens/);
  });
  it('escapes a file name that Markdown would format', () => {
    assert.equal(escapeMarkdown('my_[data]*.jsonl'), 'my\\_\\[data\\]\\*\\.jsonl');
    assert.match(statusTooltip({ ...base, uri: 'file:///x/a_b%5B1%5D.jsonl' }, on), /^\*\*a\\_b\\\[1\\\]\\\.jsonl\*\*/);
  });
});
