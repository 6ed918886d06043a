// The dataset benchmark (`npm run bench:dataset`, issue 2 "Speed"): generates a seeded 100 MB dataset, then
// measures side by side, in one run, with the page cache warm:
//   1. the baseline: read + UTF-8 decode + split + JSON.parse of every line;
//   2. our structural check (every code but too-long) from disk, the way the command line does it;
//   3. the Python reference checker (bench/check_dataset.py), and whether its counts per code equal ours;
//   4. token counting, ours against @huggingface/tokenizers (bench/tokens.bench.ts);
//   5. the language server: edit latency and memory (bench/lsp.bench.ts);
// and prints a table of figures with each goal and PASS or MISS.
//
//   node --expose-gc --import tsx bench/dataset.bench.ts [--mb N] [--runs N] [--no-tokens] [--no-lsp]
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import type { FindingCode } from '../common/dataset/codes';
import { DatasetStreamChecker, type FileSummary } from '../common/dataset/fileCheck';
import { readChunks } from '../cli/validate';
import { ensureDataset } from './generate';
import { benchLsp } from './lsp.bench';
import { benchTokens } from './tokens.bench';

/** The seed of the benchmark's dataset: change it and the file is generated again. */
export const BENCH_SEED = 20250101;

interface Timing {
  median: number;
  best: number;
  runs: number[];
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function summarise(runs: number[]): Timing {
  const sorted = [...runs].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)], best: sorted[0], runs };
}

async function seconds(task: () => Promise<unknown> | unknown): Promise<number> {
  gc();
  const start = performance.now();
  await task();
  return (performance.now() - start) / 1000;
}

/** (1) What any JavaScript tool does first: the whole file as a string, split into lines, each parsed. */
function baseline(path: string): number {
  const text = new TextDecoder().decode(readFileSync(path));
  let parsed = 0;
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    try {
      JSON.parse(line);
      parsed++;
    } catch {
      // A broken line counts as checked.
    }
  }
  return parsed;
}

/** (2) Our structural check, streamed from disk in the command line's chunks. */
async function structural(path: string): Promise<FileSummary> {
  const checker = new DatasetStreamChecker({ onFinding: () => {} });
  for await (const chunk of readChunks(path)) checker.push(chunk);
  return checker.end();
}

interface PythonResult {
  seconds: number;
  wall: number;
  byCode: Record<FindingCode, number>;
}

/** (3) The Python reference checker, in its own process; undefined when there is no python3. */
function python(path: string): PythonResult | undefined {
  const start = performance.now();
  const run = spawnSync('python3', [join(__dirname, 'check_dataset.py'), path, '--json'], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const wall = (performance.now() - start) / 1000;
  if (run.error || run.status !== 0) return undefined;
  const result = JSON.parse(run.stdout) as { seconds: number; byCode: Record<FindingCode, number> };
  return { seconds: result.seconds, wall, byCode: result.byCode };
}

interface Row {
  figure: string;
  value: string;
  goal: string;
  pass?: boolean;
}

const s = (seconds: number): string => `${seconds.toFixed(3)} s`;

function table(rows: Row[]): string {
  const width = [0, 0, 0];
  for (const r of rows) [r.figure, r.value, r.goal].forEach((c, i) => (width[i] = Math.max(width[i], c.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i < 3 ? c.padEnd(width[i]) : c)).join('  ').trimEnd();
  return [line(['figure', 'value', 'goal', 'result']), line(width.map((w) => '-'.repeat(w)).concat('------')), ...rows.map((r) => line([r.figure, r.value, r.goal, r.pass === undefined ? '' : r.pass ? 'PASS' : 'MISS']))].join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const option = (name: string, fallback: number): number => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const megabytes = option('--mb', 100);
  const runs = option('--runs', 5);
  const root = resolve(__dirname, '..');
  const path = join(root, '.bench-data', `dataset-${megabytes}mb-seed${BENCH_SEED}.jsonl`);

  console.log(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${availableParallelism()} cores, Node ${process.version}, load average ${loadavg()[0].toFixed(2)}`);
  const generatedAt = performance.now();
  const wrote = await ensureDataset(path, BENCH_SEED, megabytes * 1e6);
  const size = statSync(path).size;
  console.log(`data: ${path} (${(size / 1e6).toFixed(1)} MB, ${wrote ? `generated in ${s((performance.now() - generatedAt) / 1000)}` : 'reused'})`);
  if (!(globalThis as { gc?: unknown }).gc) console.log('note: run with --expose-gc for steadier figures');

  // Warm the page cache and the JIT before timing anything.
  baseline(path);
  const ours = await structural(path);
  const lines = ours.lines;
  console.log(`file: ${lines} lines, ${ours.examples} examples, ${ours.errors} errors, ${ours.warnings} warnings`);
  console.log(`timing: median (and best) of ${runs} runs each, page cache warm, the three checks interleaved run by run so that`);
  console.log('they share whatever else the machine is doing; ratios are of medians\n');

  const bundle = join(root, 'dist', 'cli.js');
  const command = (): boolean => spawnSync(process.execPath, [bundle, 'validate', '--no-tokens', path], { stdio: 'ignore' }).status !== null;
  const baseRuns: number[] = [];
  const checkRuns: number[] = [];
  const commandRuns: number[] = [];
  const py: PythonResult[] = [];
  for (let i = 0; i < runs; i++) {
    // Ours first, after the other processes: the baseline leaves hundreds of megabytes of strings whose
    // freeing (V8's background sweeper threads) would otherwise run during the next measurement.
    checkRuns.push(await seconds(() => structural(path)));
    baseRuns.push(await seconds(() => baseline(path)));
    if (existsSync(bundle)) commandRuns.push(await seconds(command));
    const r = python(path);
    if (r) py.push(r);
  }
  const base = summarise(baseRuns);
  const check = summarise(checkRuns);
  const mbps = (seconds: number): string => `${(size / 1e6 / seconds).toFixed(0)} MB/s`;
  const rows: Row[] = [
    { figure: '1. baseline: read + decode + split + JSON.parse', value: `${s(base.median)} (best ${s(base.best)})`, goal: '' },
    {
      figure: '2. structural check, ours, 1 thread (from disk)',
      value: `${s(check.median)} (best ${s(check.best)}, ${mbps(check.median)})`,
      goal: '≥ 2× faster than 1',
    },
    { figure: '   speed-up over the baseline', value: `${(base.median / check.median).toFixed(2)}× (best to best ${(base.best / check.best).toFixed(2)}×)`, goal: '≥ 2×', pass: base.median / check.median >= 2 },
    commandRuns.length > 0
      ? { figure: '   the command: validate --no-tokens, wall incl. Node start', value: `${s(summarise(commandRuns).median)} (best ${s(summarise(commandRuns).best)})`, goal: '' }
      : { figure: '   the command', value: 'skipped: dist/cli.js not built (npm run build)', goal: '' },
  ];

  if (py.length === 0) {
    rows.push({ figure: '3. Python checker', value: 'skipped: python3 not found or failed', goal: '' });
  } else {
    const inside = summarise(py.map((r) => r.seconds));
    const wall = summarise(py.map((r) => r.wall)).median;
    const mismatched = (Object.keys(ours.byCode) as FindingCode[]).filter((code) => code !== 'too-long' && ours.byCode[code] !== py[0].byCode[code]);
    rows.push(
      { figure: '3. Python checker (json module), inside Python', value: `${s(inside.median)} (best ${s(inside.best)}; wall ${s(wall)})`, goal: '' },
      { figure: '   ours faster than Python by', value: `${(inside.median / check.median).toFixed(2)}× (best to best ${(inside.best / check.best).toFixed(2)}×)`, goal: '≥ 2×', pass: inside.median / check.median >= 2 },
      {
        figure: '   finding counts per code, ours vs Python',
        value: mismatched.length === 0 ? 'match' : `mismatch: ${mismatched.map((c) => `${c} ${ours.byCode[c]}≠${py[0].byCode[c]}`).join(', ')}`,
        goal: 'match',
        pass: mismatched.length === 0,
      },
    );
  }

  if (!args.includes('--no-tokens')) {
    const t = await benchTokens();
    rows.push(
      { figure: `4. tokens, ours (${(t.bytes / 1e6).toFixed(0)} MB of messages, empty cache)`, value: `${t.oursMBps.toFixed(2)} MB/s (second pass ${t.oursWarmMBps.toFixed(2)})`, goal: '' },
      { figure: '   tokens, @huggingface/tokenizers', value: `${t.hfMBps.toFixed(2)} MB/s`, goal: '' },
      { figure: '   ours over @huggingface/tokenizers', value: `${t.ratio.toFixed(1)}×`, goal: '≥ 5×', pass: t.ratio >= 5 },
      { figure: '   token counts identical', value: t.identical ? `yes (${t.texts} texts)` : `no: ${t.mismatches} of ${t.texts} differ`, goal: 'identical', pass: t.identical },
    );
  }

  if (!args.includes('--no-lsp')) {
    try {
      const { edits, memory } = await benchLsp();
      rows.push(
        {
          figure: `5. LSP: one-line edit → diagnostics, ${(edits.lines / 1e6).toFixed(0)}M lines, ${edits.findings} findings (server time, median)`,
          value: `${edits.serverMedianMs.toFixed(2)} ms (p95 ${edits.serverP95Ms.toFixed(2)}, round trip ${edits.roundTripMedianMs.toFixed(2)})`,
          goal: '≤ 15 ms',
          pass: edits.serverMedianMs <= 15,
        },
        {
          figure: `   LSP: resident memory, ${(memory.fileBytes / 1e6).toFixed(0)} MB document open`,
          value: `${memory.rssRatio.toFixed(2)}× the file (peak ${memory.peakRatio.toFixed(2)}×)`,
          goal: '< 3×',
          pass: memory.rssRatio < 3,
        },
      );
    } catch (error) {
      rows.push({ figure: '5. LSP', value: `failed: ${error instanceof Error ? error.message : String(error)}`, goal: '', pass: false });
    }
  }

  console.log(table(rows));
  const list = (values: number[]): string => values.map((r) => r.toFixed(3)).join(' ');
  console.log(`\nruns (s): baseline ${list(base.runs)}; ours ${list(check.runs)}; Python ${list(py.map((r) => r.seconds))}`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
