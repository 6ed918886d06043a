// The run store's crash safety (backend/runtime/jobStore.ts, eventLog.ts, atomicFile.ts): a torn last line of an
// event log is dropped and later appends start clean; an atomic record survives a crash at any moment; a store
// process killed with SIGKILL in the middle of its writes reopens with every event it had reported stored,
// numbered without gaps, and goes on numbering from there.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { EventLog } from '../backend/runtime/eventLog';
import { JobStore } from '../backend/runtime/jobStore';
import { newJob, recordingLog, tempDir, writeDataset } from './fixtures/engines/harness';

describe('event log', () => {
  let tmp: ReturnType<typeof tempDir>;
  before(() => {
    tmp = tempDir();
  });
  after(() => tmp.cleanup());

  it('drops a half-written last line (no newline), says so, and appends after the last whole line', async () => {
    const path = join(tmp.dir, 'torn.jsonl');
    writeFileSync(path, '{"seq":1}\n{"seq":2}\n{"seq":3,"mess');
    const log = recordingLog();
    const opened = await EventLog.open(path, log);
    assert.deepEqual(opened.records, [{ seq: 1 }, { seq: 2 }]);
    assert.match(log.lines.join('\n'), /dropped a half-written last line \(14 bytes\)/);
    assert.equal(readFileSync(path, 'utf8'), '{"seq":1}\n{"seq":2}\n', 'truncated on disk');
    await opened.log.append([{ seq: 3 }]);
    await opened.log.close();
    assert.equal(readFileSync(path, 'utf8'), '{"seq":1}\n{"seq":2}\n{"seq":3}\n');
  });

  it('drops a last line of bad JSON, keeps (and skips) a bad line before it', async () => {
    const path = join(tmp.dir, 'bad.jsonl');
    writeFileSync(path, '{"seq":1}\ngarbage\n{"seq":2}\n{"seq":3\n');
    const log = recordingLog();
    const opened = await EventLog.open(path, log);
    await opened.log.close();
    assert.deepEqual(opened.records, [{ seq: 1 }, { seq: 2 }]);
    assert.equal(readFileSync(path, 'utf8'), '{"seq":1}\ngarbage\n{"seq":2}\n', 'the torn last line is gone, the middle one kept');
    assert.match(log.lines.join('\n'), /line 2 is not JSON; skipped/);
  });

  it('puts appends of one tick into one batch, in order', async () => {
    const path = join(tmp.dir, 'batch.jsonl');
    const { log } = await EventLog.open(path, recordingLog());
    await Promise.all(Array.from({ length: 50 }, (_, i) => log.append([{ i }])));
    await log.close();
    assert.deepEqual(
      readFileSync(path, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { i: number }).i),
      Array.from({ length: 50 }, (_, i) => i),
    );
  });
});

describe('job store', () => {
  let tmp: ReturnType<typeof tempDir>;
  let data: string;
  before(() => {
    tmp = tempDir();
    data = writeDataset(tmp.dir, 3);
  });
  after(() => tmp.cleanup());

  it('keeps jobs, events and checkpoints across a reopen, and numbers on from the last seq', async () => {
    const dir = join(tmp.dir, 'reopen');
    const log = recordingLog();
    const request = newJob('owner-a', data);
    let store = await JobStore.open(dir, log);
    const entry = await store.create('owner-a', request.job, request.spec);
    const first = await store.appendEvents(entry, [
      { type: 'message', level: 'info', message: 'one' },
      { type: 'message', level: 'warn', message: 'two', data: { x: 1 } },
    ]);
    assert.deepEqual(first.map((e) => e.seq), [1, 2]);
    entry.job.status = 'running';
    await store.saveJob(entry);
    await store.close();
    // What a crash in the middle of an atomic write leaves: a temporary file next to the intact record.
    writeFileSync(join(dir, 'jobs', entry.job.id, `.job.json.abc123.tmp`), '{"version":1,"own');
    store = await JobStore.open(dir, log);
    const again = store.get(entry.job.id)!;
    assert.equal(again.job.status, 'running');
    assert.equal(again.job.last_event_seq, 2);
    assert.deepEqual(again.events, first);
    assert.deepEqual(readdirSync(join(dir, 'jobs', entry.job.id)).filter((n) => n.endsWith('.tmp')), [], 'the temporary file is removed');
    const next = await store.appendEvents(again, [{ type: 'message', level: 'info', message: 'three' }]);
    assert.equal(next[0]!.seq, 3);
    await store.close();
  });

  it('leaves a job folder with an unreadable record alone, and loads the others', async () => {
    const dir = join(tmp.dir, 'damaged');
    const log = recordingLog();
    let store = await JobStore.open(dir, log);
    const a = newJob('owner-a', data);
    const b = newJob('owner-a', data);
    await store.create('owner-a', a.job, a.spec);
    await store.create('owner-a', b.job, b.spec);
    await store.close();
    writeFileSync(join(dir, 'jobs', a.job.id, 'job.json'), '{not json');
    mkdirSync(join(dir, 'jobs', 'not-a-job-id'));
    store = await JobStore.open(dir, log);
    assert.deepEqual(store.all().map((e) => e.job.id), [b.job.id]);
    assert.match(log.lines.join('\n'), new RegExp(`job ${a.job.id} not loaded \\(its folder is left as it is\\)`));
    assert.equal(readFileSync(join(dir, 'jobs', a.job.id, 'job.json'), 'utf8'), '{not json', 'nothing thrown away');
    await store.close();
  });

  for (const round of [1, 2, 3]) {
    it(`survives SIGKILL in the middle of its writes (round ${round}): every reported event is there, no gaps`, async () => {
      const dir = join(tmp.dir, `crash-${round}`);
      let reported = 0;
      let jobId = '';
      for (let life = 0; life < 2; life++) {
        const child = spawn(process.execPath, ['--import', 'tsx', resolve(__dirname, 'fixtures/engines/storeCrasher.ts'), dir, data], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        // Kill it at a different point each time: after a number of appends that varies with the round.
        const killAfter = reported + 40 + round * 37 + life * 11;
        for await (const line of createInterface({ input: child.stdout })) {
          const [kind, value] = line.split(' ') as [string, string];
          if (kind === 'job') jobId = value;
          else reported = Number(value);
          if (reported >= killAfter) {
            child.kill('SIGKILL');
            break;
          }
        }
        await once(child, 'exit');
      }
      const log = recordingLog();
      const store = await JobStore.open(dir, log);
      const entry = store.get(jobId);
      assert.ok(entry, 'the job record is readable');
      assert.ok(entry.events.length >= reported, `${entry.events.length} events on disk, ${reported} reported`);
      assert.deepEqual(entry.events.map((e) => e.seq), entry.events.map((_, i) => i + 1));
      assert.equal(entry.job.last_event_seq, entry.events.length);
      await store.close();
    });
  }
});
