// Training speed of the embedded engine: trainStep + clipping + AdamW on the built-in tiny models with LoRA r=16
// on all seven projections at sequence length 256, in tokens/s and achieved GFLOP/s (FLOPs counted from the
// shapes), side by side with the same step in plain PyTorch on the CPU (bench/engine_torch.py, Debian's
// python3-torch, installed here when absent and we are root). `npm run bench:engine`.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { TINY_MODELS, type TinyModel } from '../backend/engines/embedded/catalog';
import { AdamW, clipGradNorm } from '../backend/engines/embedded/model/adamw';
import { Qwen2Model, type LoraOptions } from '../backend/engines/embedded/model/qwen2';
import { Rng } from '../backend/engines/embedded/model/rng';

const SEQUENCE = 256;
const LORA: LoraOptions = { r: 16, alpha: 32, dropout: 0, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] };
const PYTHON = '/usr/bin/python3';

/** Our figures for one model. */
interface Ours {
  tokensPerSecond: number;
  gflops: number;
  msPerStep: number;
}

/** Times our training step: two warm-up steps, then at least 3 steps and 3 seconds. */
export function benchOurs(tiny: TinyModel): Ours {
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
  let steps = 0;
  const start = performance.now();
  while (steps < 3 || performance.now() - start < 3000) {
    step();
    steps++;
  }
  const seconds = (performance.now() - start) / 1000;
  const tokensPerSecond = (steps * SEQUENCE) / seconds;
  return { tokensPerSecond, gflops: (tokensPerSecond * model.flopsPerToken(SEQUENCE).trainStep) / 1e9, msPerStep: (seconds * 1000) / steps };
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

/** Tokens/s of the PyTorch step, or the reason it could not run. */
function benchTorch(tiny: TinyModel, threads: number): number | string {
  const script = join(__dirname, 'engine_torch.py');
  const args = [script, JSON.stringify(tiny.config), '--seq', String(SEQUENCE), '--rank', String(LORA.r), '--alpha', String(LORA.alpha), '--threads', String(threads)];
  const r = spawnSync(PYTHON, args, { encoding: 'utf8' });
  if (r.status !== 0) return `engine_torch.py failed: ${(r.stderr || '').trim().split('\n').pop() ?? ''}`;
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return (JSON.parse(line) as { tokens_per_second: number }).tokens_per_second;
}

function main(): void {
  const cpus = (spawnSync('nproc', { encoding: 'utf8' }).stdout || '?').trim();
  console.log(`embedded engine training step: LoRA r=${LORA.r} on all 7 projections, sequence ${SEQUENCE}, batch 1, node ${process.version}, ${cpus} CPUs`);
  const torchMissing = ensureTorch();
  if (torchMissing) console.log(`PyTorch comparison skipped: ${torchMissing}`);
  const rows: string[][] = [['model', 'ours tok/s', 'ms/step', 'GFLOP/s', 'torch 1-thread tok/s', 'torch all-threads tok/s', 'ours / torch 1-thread']];
  for (const tiny of TINY_MODELS) {
    const ours = benchOurs(tiny);
    const one = torchMissing ? torchMissing : benchTorch(tiny, 1);
    const all = torchMissing ? torchMissing : benchTorch(tiny, 0);
    const fmt = (x: number | string): string => (typeof x === 'number' ? x.toFixed(0) : 'n/a');
    if (typeof one === 'string' && !torchMissing) console.log(`${tiny.id}: ${one}`);
    rows.push([tiny.id, ours.tokensPerSecond.toFixed(0), ours.msPerStep.toFixed(0), ours.gflops.toFixed(2), fmt(one), fmt(all), typeof one === 'number' ? (ours.tokensPerSecond / one).toFixed(2) : 'n/a']);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
}

if (require.main === module) main();
