// How long the dashboard waits for a long run's history (`npm run bench:metrics`): a data folder holding finished
// runs of 100,000 steps each, written the way the runtime stores them (job.json, and events.jsonl with a metrics
// event per step, evaluations every 100 steps and the usual messages), a real backend started on it in its own
// process (test/fixtures/engines/backendChild.ts), and the two ways the dashboard reads a history, through
// BackendClient into the dashboard's MetricsTable (src/dashboardModel.ts), timed from the first request to the
// filled table:
//   pages    `…/events` pages of 1,000, 4 at a time (what backends without `…/metrics` get);
//   columns  one `…/metrics` answer; "cold" is a job's first request since the backend started (the backend builds
//            its columns), "warm" a later one (served from its cached blocks).
// The two ways are interleaved (each round: pages, columns, columns again), and every table is checked to be
// equal. Median (min–max) of the repetitions.
//
//   npm run bench:metrics
//   tsx bench/metrics.bench.ts [--steps N] [--runs N] [--jobs N]
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { FineTuningJob, FineTuningJobEvent, MetricsData } from '../common/api';
import { ownerOf } from '../backend/http/auth';
import { BackendClient } from '../src/backendClient';
import { HistoryReader, MetricsTable, readEventPages } from '../src/dashboardModel';
import { newJob } from '../test/fixtures/engines/harness';

const KEY = 'fs-bench-metrics-key-0123456789abcdef';

function intArg(name: string, fallback: number, min: number): number {
  const at = process.argv.indexOf(name);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer of at least ${min}, got ${process.argv[at + 1]}`);
  return value;
}

/** An id body the way ids look (24 letters or digits), cheap to make by the hundred thousand. */
function idBody(n: number, salt: string): string {
  return `${salt}${n.toString(36)}`.padStart(24, '0').slice(-24);
}

/** Writes one finished run of `steps` steps into `{dataDir}/jobs/{id}/`; returns its id and its last seq. */
async function writeRun(dataDir: string, steps: number, salt: string): Promise<{ id: string; lastSeq: number }> {
  const owner = ownerOf(KEY);
  const draft = newJob(owner, join(dataDir, 'train.jsonl'), { hyperparameters: { n_epochs: 10 } });
  const started = Math.floor(Date.now() / 1000) - steps;
  const dir = join(dataDir, 'jobs', draft.job.id);
  mkdirSync(join(dir, 'engine'), { recursive: true });
  const out = createWriteStream(join(dir, 'events.jsonl'));
  let seq = 0;
  let chunk: string[] = [];
  const write = async (event: Omit<FineTuningJobEvent, 'object' | 'id' | 'seq' | 'job_id' | 'created_at' | 'level'>, createdAt: number): Promise<void> => {
    seq++;
    chunk.push(JSON.stringify({ object: 'fine_tuning.job.event', id: `ftevent-${idBody(seq, salt)}`, created_at: createdAt, level: 'info', ...event, seq, job_id: draft.job.id }));
    if (chunk.length >= 5000) await flush();
  };
  const flush = async (): Promise<void> => {
    if (!out.write(`${chunk.join('\n')}\n`)) await once(out, 'drain');
    chunk = [];
  };
  await write({ type: 'message', message: 'Job created', data: { status: 'validating_files' } }, started);
  await write({ type: 'message', message: 'Job queued', data: { status: 'queued' } }, started);
  await write({ type: 'message', message: 'Job started', data: { status: 'running' } }, started);
  let last: MetricsData | undefined;
  for (let step = 1; step <= steps; step++) {
    const loss = 2.5 * Math.exp(-step / (steps / 3)) + 0.3 + 0.05 * Math.sin(step * 12.9898);
    const data: MetricsData = {
      step,
      total_steps: steps,
      epoch: (step / steps) * 10,
      train_loss: loss,
      train_mean_token_accuracy: 1 - loss / 3.2,
      learning_rate: 2e-4 * 0.5 * (1 + Math.cos((Math.PI * step) / steps)),
      grad_norm: 0.8 + 0.3 * Math.abs(Math.sin(step * 78.233)),
      tokens_per_second: 15_000 + 500 * Math.sin(step / 50),
      elapsed: step * 0.41,
    };
    if (step % 100 === 0) Object.assign(data, { valid_loss: loss * 1.05, valid_mean_token_accuracy: 1 - (loss * 1.05) / 3.2 });
    const valid = data.valid_loss === undefined ? '' : `, validation loss=${data.valid_loss.toFixed(4)}`;
    await write({ type: 'metrics', message: `Step ${step}/${steps}: training loss=${loss.toFixed(4)}${valid}`, data }, started + Math.floor(data.elapsed));
    last = data;
  }
  await write({ type: 'message', message: 'Job succeeded', data: { status: 'succeeded' } }, started + steps);
  await flush();
  out.end();
  await once(out, 'finish');
  const job: FineTuningJob = {
    ...draft.job,
    status: 'succeeded',
    created_at: started,
    started_at: started,
    finished_at: started + steps,
    trained_tokens: steps * 4096,
    progress: last === undefined ? null : { step: last.step, total_steps: steps, epoch: last.epoch },
    last_event_seq: seq,
  };
  writeFileSync(join(dir, 'job.json'), JSON.stringify({ version: 1, owner, job, spec: draft.spec, created_ms: Date.now(), final_checkpoint: null }));
  return { id: job.id, lastSeq: seq };
}

/** Starts the backend in its own process on the folder; resolves with its URL. */
async function startBackendProcess(dataDir: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(__dirname, '../test/fixtures/engines/backendChild.ts'), dataDir, KEY], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`the backend exited (${String(code)}) before it listened`);
  });
  const listening = (async () => {
    for await (const line of lines) {
      const message = JSON.parse(line) as { url?: string };
      if (message.url !== undefined) return message.url;
    }
    throw new Error('the backend closed its output before it listened');
  })();
  return { url: await Promise.race([listening, exited]), child };
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function figure(values: readonly number[]): string {
  return `${median(values).toFixed(0)} ms (${Math.min(...values).toFixed(0)}–${Math.max(...values).toFixed(0)})`;
}

/** What a table holds, to check that both reads fill the same one. */
function fingerprint(table: MetricsTable): string {
  return JSON.stringify({ step: table.step, time: table.time, values: table.values, lastSeq: table.lastSeq });
}

async function main(): Promise<void> {
  const steps = intArg('--steps', 100_000, 1000);
  const runs = intArg('--runs', 5, 1);
  const jobs = intArg('--jobs', 3, 1);
  const dataDir = mkdtempSync(join(tmpdir(), 'finetune-bench-metrics-'));
  const began = performance.now();
  let child: ChildProcess | undefined;
  try {
    process.stdout.write(`writing ${jobs} finished run(s) of ${steps.toLocaleString('en-US')} steps… `);
    const written: { id: string; lastSeq: number }[] = [];
    for (let j = 0; j < jobs; j++) written.push(await writeRun(dataDir, steps, `b${j}`));
    // A shorter run read both ways first, untimed, twice: the timings are not the JIT's first compiles of either
    // side (in the extension host and the backend those are paid once per session, whichever way it reads).
    const warmUp = await writeRun(dataDir, Math.ceil(steps / 5), 'w');
    process.stdout.write('starting the backend… ');
    const started = await startBackendProcess(dataDir);
    child = started.child;
    process.stdout.write('reading\n');
    const client = new BackendClient({ url: started.url, apiKey: KEY, timeoutMs: 300_000 });
    const options = (lastSeq: number) => ({ knownLastSeq: lastSeq, stopped: () => false, onRows: () => undefined });

    const timed = async (read: (table: MetricsTable) => Promise<unknown>): Promise<{ ms: number; table: MetricsTable }> => {
      const table = new MetricsTable();
      const t0 = performance.now();
      await read(table);
      return { ms: performance.now() - t0, table };
    };

    for (let i = 0; i < 2; i++) {
      await readEventPages(client, warmUp.id, new MetricsTable(), options(warmUp.lastSeq));
      await new HistoryReader().read(client, warmUp.id, new MetricsTable(), options(warmUp.lastSeq));
    }

    // Interleaved, so that both ways meet the same load: each round reads one job by pages, then by columns (cold
    // the first time that job is asked for: the backend builds its columns), then by columns again (warm).
    const pages: number[] = [];
    const cold: number[] = [];
    const warm: number[] = [];
    let reference: string | undefined;
    const check = (table: MetricsTable, what: string): void => {
      if (table.length !== steps) throw new Error(`${what} gave ${table.length} rows, not ${steps}`);
      reference ??= fingerprint(table);
      // Every run holds the same values (only the ids differ), so every read fills the same table.
      if (fingerprint(table) !== reference) throw new Error(`${what} filled another table than the first read`);
    };
    const askedFor = new Set<string>();
    for (let round = 0; round < Math.max(runs, jobs); round++) {
      const job = written[round % jobs];
      const paged = await timed((t) => readEventPages(client, job.id, t, options(job.lastSeq)));
      check(paged.table, 'the pages');
      if (round < runs) pages.push(paged.ms);
      const columns = await timed((t) => new HistoryReader().read(client, job.id, t, options(job.lastSeq)));
      check(columns.table, 'the columns');
      (askedFor.has(job.id) ? warm : cold).push(columns.ms);
      askedFor.add(job.id);
      const again = await timed((t) => new HistoryReader().read(client, job.id, t, options(job.lastSeq)));
      check(again.table, 'the columns again');
      if (round < runs) warm.push(again.ms);
      process.stdout.write('.');
    }
    const first = written[0];

    // What travels, outside the timings.
    const auth = { authorization: `Bearer ${KEY}` };
    const metricsBytes = (await (await fetch(`${started.url}/v1/fine_tuning/jobs/${first.id}/metrics`, { headers: auth })).arrayBuffer()).byteLength;
    let eventBytes = 0;
    for (let after = 0; after < first.lastSeq; after += 1000) {
      eventBytes += (await (await fetch(`${started.url}/v1/fine_tuning/jobs/${first.id}/events?after=${after}&limit=1000`, { headers: auth })).arrayBuffer()).byteLength;
    }

    const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;
    const rows = [
      ['read of a finished 100,000-step history, request to filled table', 'time', 'on the wire'],
      [`pages: ${Math.ceil(first.lastSeq / 1000)} × …/events?limit=1000, 4 at a time (median of ${pages.length})`, figure(pages), mb(eventBytes)],
      [`columns: one …/metrics, the job's first request since start (median of ${cold.length})`, figure(cold), mb(metricsBytes)],
      [`columns: one …/metrics, again (cached blocks; median of ${warm.length})`, figure(warm), mb(metricsBytes)],
    ];
    if (steps !== 100_000) rows[0][0] = rows[0][0].replace('100,000', steps.toLocaleString('en-US'));
    const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
    const line = (r: string[]): string => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
    process.stdout.write(`\n\nNode ${process.version}, ${availableParallelism()} CPUs (${cpus()[0]?.model.trim() ?? 'unknown'}), backend in its own process on loopback\n\n`);
    process.stdout.write(`${[line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n')}\n`);
    process.stdout.write(`\npages/columns: ${(median(pages) / median(cold)).toFixed(1)}× cold, ${(median(pages) / median(warm)).toFixed(1)}× warm\n`);
    const list = (values: readonly number[]): string => values.map((v) => v.toFixed(0)).join(', ');
    process.stdout.write(`each (ms): pages ${list(pages)}; columns first ${list(cold)}; columns again ${list(warm)}\n`);
    process.stdout.write(`bench took ${((performance.now() - began) / 1000).toFixed(1)} s\n`);
  } finally {
    if (child !== undefined && child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
