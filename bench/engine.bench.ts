// Training speed of the embedded engine: trainStep + clipping + AdamW on the built-in tiny models with LoRA r=16
// on all seven projections at sequence length 256, in tokens/s and achieved GFLOP/s (FLOPs counted from the
// shapes), side by side with the same step in plain PyTorch on the CPU (bench/engine_torch.py, Debian's
// python3-torch, installed here when absent and we are root). `npm run bench:engine`.
//
// The machine may be shared, so each side is timed in several repetitions and the best one is kept, both by the
// wall clock and by the process's CPU time (process.cpuUsage(); time.process_time() in Python). Our step is one
// thread, so its CPU time is what it costs on a core of its own; the ratio compares that with torch limited to
// one thread, measured the same way. Options: --model <id> (repeatable), --reps N, --seconds S, --no-torch.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { TINY_MODELS, type TinyModel } from '../backend/engines/embedded/catalog';
import { AdamW, clipGradNorm } from '../backend/engines/embedded/model/adamw';
import { Qwen2Model, type LoraOptions } from '../backend/engines/embedded/model/qwen2';
import { Rng } from '../backend/engines/embedded/model/rng';

const SEQUENCE = 256;
const LORA: LoraOptions = { r: 16, alpha: 32, dropout: 0, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] };
const PYTHON = '/usr/bin/python3';

/** How the benchmark runs, from the command line. */
interface BenchOptions {
  models: string[];
  reps: number;
  seconds: number;
  torch: boolean;
}

/** Best-of-repetitions figures of one side for one model. */
export interface Timing {
  /** Tokens per second of wall-clock time (the best repetition). */
  tokensPerSecond: number;
  /** Tokens per second of the process's CPU time (the best repetition). */
  cpuTokensPerSecond: number;
}

/** Our figures for one model. */
interface Ours extends Timing {
  gflops: number;
  cpuGflops: number;
  msPerStep: number;
}

/** Times our training step: two warm-up steps, then `reps` repetitions of at least 3 steps and `seconds` each. */
export function benchOurs(tiny: TinyModel, reps = 3, seconds = 1.5): Ours {
  const model = Qwen2Model.init(tiny.config, tiny.seed);
  model.addLora(LORA, 1);
  const rng = new Rng(2);
  const ids = Int32Array.from({ length: SEQUENCE }, () => rng.nextUint32() % 259);
  const labels = ids.slice();
  labels[0] = -100;
  const params = model.parameters();
  const opt = new AdamW(params);
  const step = (): void => {
    model.zeroGrad();
    model.trainStep(ids, labels, 1 / (SEQUENCE - 1), rng);
    clipGradNorm(params, 1);
    opt.step(1e-3);
  };
  step();
  step();
  let best: Timing = { tokensPerSecond: 0, cpuTokensPerSecond: 0 };
  for (let r = 0; r < Math.max(1, reps); r++) {
    let steps = 0;
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    while (steps < 3 || performance.now() - start < seconds * 1000) {
      step();
      steps++;
    }
    const wall = (performance.now() - start) / 1000;
    const used = process.cpuUsage(cpuStart);
    const cpu = (used.user + used.system) / 1e6;
    best = {
      tokensPerSecond: Math.max(best.tokensPerSecond, (steps * SEQUENCE) / wall),
      cpuTokensPerSecond: Math.max(best.cpuTokensPerSecond, (steps * SEQUENCE) / cpu),
    };
  }
  const flops = model.flopsPerToken(SEQUENCE).trainStep;
  return {
    ...best,
    gflops: (best.tokensPerSecond * flops) / 1e9,
    cpuGflops: (best.cpuTokensPerSecond * flops) / 1e9,
    msPerStep: (SEQUENCE / best.cpuTokensPerSecond) * 1000,
  };
}

/** Makes sure Debian's torch is importable; the reason when it is not. */
function ensureTorch(): string | null {
  const probe = (): boolean => spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  if (probe()) return null;
  if (process.getuid?.() !== 0) return `${PYTHON} has no torch and we are not root to apt-get install python3-torch`;
  console.log('installing python3-torch (apt-get) for the comparison …');
  let r = spawnSync('apt-get', ['install', '-y', 'python3-torch'], { encoding: 'utf8' });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update'], { stdio: 'ignore' });
    r = spawnSync('apt-get', ['install', '-y', 'python3-torch'], { encoding: 'utf8' });
  }
  if (r.status !== 0) return `apt-get install python3-torch failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop() ?? ''}`;
  return probe() ? null : `python3-torch installed but ${PYTHON} still cannot import torch`;
}

/** The PyTorch step's figures, or the reason it could not run. */
function benchTorch(tiny: TinyModel, threads: number, o: BenchOptions): Timing | string {
  const script = join(__dirname, 'engine_torch.py');
  const args = [script, JSON.stringify(tiny.config), '--seq', String(SEQUENCE), '--rank', String(LORA.r), '--alpha', String(LORA.alpha), '--threads', String(threads)];
  // At least 2 steps a repetition (its default is 5): torch on all threads of a busy machine can take 10 s a step.
  args.push('--reps', String(o.reps), '--seconds', String(o.seconds), '--steps', '2');
  const r = spawnSync(PYTHON, args, { encoding: 'utf8' });
  if (r.status !== 0) return `engine_torch.py failed: ${(r.stderr || '').trim().split('\n').pop() ?? ''}`;
  const line = r.stdout.trim().split('\n').pop() ?? '';
  const out = JSON.parse(line) as { tokens_per_second: number; cpu_tokens_per_second: number };
  return { tokensPerSecond: out.tokens_per_second, cpuTokensPerSecond: out.cpu_tokens_per_second };
}

function parseOptions(argv: string[]): BenchOptions {
  const o: BenchOptions = { models: [], reps: 3, seconds: 1.5, torch: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--model') o.models.push(value());
    else if (a === '--reps') o.reps = Number(value());
    else if (a === '--seconds') o.seconds = Number(value());
    else if (a === '--no-torch') o.torch = false;
    else throw new Error(`unknown option ${a} (known: --model <id>, --reps N, --seconds S, --no-torch)`);
  }
  if (!(Number.isInteger(o.reps) && o.reps > 0)) throw new Error(`--reps must be a positive integer, got ${o.reps}`);
  if (!(o.seconds > 0)) throw new Error(`--seconds must be positive, got ${o.seconds}`);
  const unknown = o.models.filter((id) => !TINY_MODELS.some((t) => t.id === id));
  if (unknown.length > 0) throw new Error(`unknown model ${unknown.join(', ')} (known: ${TINY_MODELS.map((t) => t.id).join(', ')})`);
  return o;
}

function main(): void {
  const o = parseOptions(process.argv.slice(2));
  const cpus = (spawnSync('nproc', { encoding: 'utf8' }).stdout || '?').trim();
  console.log(`embedded engine training step: LoRA r=${LORA.r} on all 7 projections, sequence ${SEQUENCE}, batch 1, node ${process.version}, ${cpus} CPUs`);
  console.log(`best of ${o.reps} repetitions of ≥ ${o.seconds} s each; "cpu" figures are tokens per second of process CPU time`);
  const torchMissing = o.torch ? ensureTorch() : 'disabled by --no-torch';
  if (torchMissing) console.log(`PyTorch comparison skipped: ${torchMissing}`);
  const rows: string[][] = [['model', 'ours wall tok/s', 'ours cpu tok/s', 'ms/step (cpu)', 'GFLOP/s (cpu)', 'torch 1-thr wall', 'torch 1-thr cpu', 'torch all-thr wall', 'ours/torch (cpu, 1 thr)']];
  const fmt = (x: number | undefined): string => (x === undefined ? 'n/a' : x.toFixed(0));
  for (const tiny of TINY_MODELS) {
    if (o.models.length > 0 && !o.models.includes(tiny.id)) continue;
    const ours = benchOurs(tiny, o.reps, o.seconds);
    const one = torchMissing ? torchMissing : benchTorch(tiny, 1, o);
    const all = torchMissing ? torchMissing : benchTorch(tiny, 0, o);
    if (typeof one === 'string' && !torchMissing) console.log(`${tiny.id}: ${one}`);
    const oneT = typeof one === 'string' ? undefined : one;
    const allT = typeof all === 'string' ? undefined : all;
    rows.push([
      tiny.id,
      fmt(ours.tokensPerSecond),
      fmt(ours.cpuTokensPerSecond),
      ours.msPerStep.toFixed(0),
      ours.cpuGflops.toFixed(2),
      fmt(oneT?.tokensPerSecond),
      fmt(oneT?.cpuTokensPerSecond),
      fmt(allT?.tokensPerSecond),
      oneT ? (ours.cpuTokensPerSecond / oneT.cpuTokensPerSecond).toFixed(2) : 'n/a',
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
  console.log('ratio: our CPU-time tokens/s over torch limited to 1 thread, CPU-time tokens/s (single thread vs single thread)');
}

if (require.main === module) main();
