import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DATASET_SECTION, DEFAULT_DATASET_SETTINGS, readDatasetSettings, type DatasetSettings } from '../src/datasetSettings';

describe('readDatasetSettings', () => {
  it('passes valid values through', () => {
    const values: DatasetSettings = { maxSequenceLength: 8192, maxDiagnostics: 50, countTokens: false };
    assert.deepEqual(readDatasetSettings((key) => values[key]), values);
  });

  it('replaces missing, mistyped or out-of-range values by their defaults', () => {
    const table: Record<string, unknown>[] = [
      {},
      { maxSequenceLength: '4096', maxDiagnostics: null, countTokens: 'yes' },
      { maxSequenceLength: 0, maxDiagnostics: -1, countTokens: 1 },
      { maxSequenceLength: 1.5, maxDiagnostics: Number.NaN },
    ];
    for (const raw of table) assert.deepEqual(readDatasetSettings((key) => raw[key]), DEFAULT_DATASET_SETTINGS, JSON.stringify(raw));
  });

  it('agrees with the defaults and keys that package.json declares', () => {
    const manifest = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as {
      contributes: { configuration: { properties: Record<string, { default: unknown }> } };
    };
    const declared = Object.entries(manifest.contributes.configuration.properties)
      .filter(([key]) => key.startsWith(`${DATASET_SECTION}.`))
      .map(([key, value]) => [key.slice(DATASET_SECTION.length + 1), value.default]);
    assert.deepEqual(Object.fromEntries(declared), { ...DEFAULT_DATASET_SETTINGS });
  });
});
