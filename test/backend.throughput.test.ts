// The measured training throughput over real HTTP: after a job succeeds, `/v1/models` shows its base model's
// `measured_tokens_per_second` (the median of the job's step rates, and only on that model), the figure survives
// a restart of the backend, and a damaged `throughput.json` neither stops the backend nor invents a figure.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { FileObject, FineTuningJob, FineTuningJobEvent, ListObject, ModelObject } from '../common/api';
import { parseModelList } from '../common/apiGuards';
import { TINY_MODELS } from '../backend/engines/embedded/catalog';
import { ownerOf } from '../backend/http/auth';
import { medianTokensPerSecond } from '../backend/runtime/throughput';
import { call, dataset, startTestBackend, type TestBackend, upload, waitForFinal } from './backend.harness';

const MODEL = TINY_MODELS[0].id;
const dir = mkdtempSync(join(tmpdir(), 'finetune-throughput-test-'));
let b: TestBackend | undefined;

after(async () => {
  await b?.backend.close();
  rmSync(dir, { recursive: true, force: true });
});

async function baseModels(backend: TestBackend): Promise<ModelObject[]> {
  const reply = await call<ListObject<ModelObject>>(backend, 'GET', '/v1/models');
  assert.equal(reply.status, 200, reply.text);
  // The client's guard must accept the new field as the backend sends it.
  assert.doesNotThrow(() => parseModelList(reply.body));
  return reply.body.data.filter((m) => m.kind === 'base');
}

describe('measured_tokens_per_second', () => {
  let measured = 0;

  it('is absent before any run, and after a job succeeds is its median step rate, on its model only', async () => {
    b = await startTestBackend({}, dir);
    for (const m of await baseModels(b)) assert.equal(m.measured_tokens_per_second, undefined, m.id);

    const file = (await upload(b, dataset(8))).body as FileObject;
    const created = await call<FineTuningJob>(b, 'POST', '/v1/fine_tuning/jobs', {
      json: { model: MODEL, training_file: file.id, method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 1, batch_size: 4, max_seq_length: 128, eval_ratio: 0 } } } },
    });
    assert.equal(created.status, 200, created.text);
    const final = await waitForFinal(b, ownerOf(b.key), created.body.id, 60_000);
    assert.equal(final.status, 'succeeded', JSON.stringify(final.error));

    const events = await call<ListObject<FineTuningJobEvent>>(b, 'GET', `/v1/fine_tuning/jobs/${final.id}/events?limit=1000`);
    const expected = medianTokensPerSecond(events.body.data);
    assert.ok(expected !== undefined && expected > 0, 'the job reported step rates');

    const models = await baseModels(b);
    const model = models.find((m) => m.id === MODEL);
    assert.equal(model?.measured_tokens_per_second, expected);
    for (const m of models.filter((m) => m.id !== MODEL)) assert.equal(m.measured_tokens_per_second, undefined, m.id);
    const single = await call<ModelObject>(b, 'GET', `/v1/models/${MODEL}`);
    assert.equal(single.body.measured_tokens_per_second, expected);
    measured = expected;
  });

  it('survives a restart (throughput.json in the data folder)', async () => {
    assert.ok(b && measured > 0, 'the first test measured a rate');
    await b.backend.close();
    b = undefined;
    const stored = JSON.parse(readFileSync(join(dir, 'throughput.json'), 'utf8')) as { records: { model: string; tokens_per_second: number }[] };
    assert.deepEqual(stored.records.map((r) => [r.model, r.tokens_per_second]), [[MODEL, measured]]);

    b = await startTestBackend({}, dir);
    const model = (await baseModels(b)).find((m) => m.id === MODEL);
    assert.equal(model?.measured_tokens_per_second, measured);
  });

  it('a damaged throughput.json is logged and ignored; the backend starts', async () => {
    await b?.backend.close();
    b = undefined;
    writeFileSync(join(dir, 'throughput.json'), '{"records": [ {"engine": "embedded"');
    b = await startTestBackend({}, dir);
    await b.log.waitFor(/throughput\.json: not JSON/, 1000, true);
    for (const m of await baseModels(b)) assert.equal(m.measured_tokens_per_second, undefined, m.id);
  });
});
