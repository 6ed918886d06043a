// The torch engine's memory plan (backend/engines/torch/finetune_torch/memory.py, issue 8: "gradient checkpointing
// chosen by model size and free memory"): whether to checkpoint gradients and how long a packed row may be, for
// Qwen2.5 shapes on 80 GiB and 24 GiB GPUs. Pure Python, so CI runs it with plain python3 (no torch).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LORA_TARGET_MODULES } from '../common/api';

const ROOT = join(__dirname, '..');
const ENGINE_DIR = join(ROOT, 'backend', 'engines', 'torch');
const PROBE = join(ROOT, 'test', 'fixtures', 'torch', 'probe.py');
const PYTHON = process.env.FINETUNE_PYTHON ?? 'python3';
const GIB = 1024 ** 3;

interface Shape {
  hidden: number;
  layers: number;
  intermediate: number;
  vocab: number;
  heads: number;
  kv_heads: number;
}
type Plan = { checkpointing: boolean; row_tokens: number; fixed_bytes: number; usable_bytes: number; lora_parameters: number; log: string } | { error: string };
interface Case {
  shape: Shape;
  dtype_bytes: number;
  free_bytes: number;
  max_seq_length: number;
  lora_rank: number;
  lora_targets: string[];
  loss_chunk: number;
  dense_mask?: boolean;
}

/** Qwen2.5 Instruct shapes (their config.json) and parameter counts. */
const QWEN: Record<string, { shape: Shape; parameters: number }> = {
  '0.5b': { shape: { hidden: 896, layers: 24, intermediate: 4864, vocab: 151936, heads: 14, kv_heads: 2 }, parameters: 494e6 },
  '7b': { shape: { hidden: 3584, layers: 28, intermediate: 18944, vocab: 152064, heads: 28, kv_heads: 4 }, parameters: 7.62e9 },
  '32b': { shape: { hidden: 5120, layers: 64, intermediate: 27648, vocab: 152064, heads: 40, kv_heads: 8 }, parameters: 32.76e9 },
};

/** The engine's loss chunk (train.py LOSS_CHUNK). */
const LOSS_CHUNK = 1024;

function plans(cases: Case[]): Plan[] {
  const result = spawnSync(PYTHON, [PROBE], { input: JSON.stringify({ op: 'memory_plan', cases }), env: { ...process.env, PYTHONPATH: ENGINE_DIR }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw result.error;
  assert.equal(result.status, 0, `probe memory_plan failed:\n${result.stderr}`);
  return (JSON.parse(result.stdout) as { plans: Plan[] }).plans;
}

/** A bf16 LoRA r=16 job on all seven projections, with what a GPU of `gpuGiB` has free once the weights are in. */
function onGpu(size: string, gpuGiB: number, maxSeqLength = 2048, more: Partial<Case> = {}): Case {
  const { shape, parameters } = QWEN[size];
  // The CUDA context and allocator take about a GiB before the weights.
  const free = gpuGiB * GIB - parameters * 2 - GIB;
  return { shape, dtype_bytes: 2, free_bytes: Math.round(free), max_seq_length: maxSeqLength, lora_rank: 16, lora_targets: [...LORA_TARGET_MODULES], loss_chunk: LOSS_CHUNK, ...more };
}

const ok = (plan: Plan): Exclude<Plan, { error: string }> => {
  assert.ok(!('error' in plan), `expected a plan, got: ${'error' in plan ? plan.error : ''}`);
  return plan;
};

describe('torch engine: memory plan', () => {
  it('makes sensible choices for Qwen2.5 0.5B, 7B and 32B on 80 GiB and 24 GiB', () => {
    const [small80, small24, seven80, seven24, big80, big24] = plans([onGpu('0.5b', 80), onGpu('0.5b', 24), onGpu('7b', 80), onGpu('7b', 24), onGpu('32b', 80), onGpu('32b', 24)]);
    assert.equal(ok(small80).checkpointing, false);
    assert.equal(ok(small24).checkpointing, false);
    assert.equal(ok(small80).row_tokens, 16384, 'a small model on a big GPU packs rows up to the cap');
    assert.equal(ok(seven80).checkpointing, false, '7B at 2048 tokens fits 80 GiB without checkpointing');
    assert.equal(ok(seven24).checkpointing, true, '7B on 24 GiB needs checkpointing');
    assert.equal(ok(big80).checkpointing, true, '32B on 80 GiB needs checkpointing');
    for (const p of [small80, small24, seven80, seven24, big80]) assert.ok(ok(p).row_tokens >= 2048, ok(p).log);
    assert.ok('error' in big24 && /the model does not fit/.test(big24.error), JSON.stringify(big24));
    assert.match(ok(seven24).log, /gradient checkpointing on \(usable [\d.]+ GiB, fixed [\d.]+ GiB for [\d,]+ LoRA parameters/);
  });

  it('never checkpoints, shortens rows below max_seq_length or refuses where it did not with less memory', () => {
    for (const size of Object.keys(QWEN)) {
      for (const seq of [512, 2048, 8192, 32768]) {
        const sweep = Array.from({ length: 120 }, (_, i) => onGpu(size, 1 + i, seq));
        const results = plans(sweep);
        let fitted = false;
        let unchecked = false;
        results.forEach((plan, i) => {
          const where = `${size}, ${seq} tokens, ${1 + i} GiB`;
          if ('error' in plan) {
            assert.ok(!fitted, `${where}: refused after fitting with less memory: ${plan.error}`);
            return;
          }
          fitted = true;
          assert.ok(plan.row_tokens >= seq, `${where}: rows of ${plan.row_tokens}`);
          assert.ok(!(unchecked && plan.checkpointing), `${where}: checkpointing back on with more memory`);
          unchecked ||= !plan.checkpointing;
        });
        assert.ok(fitted, `${size} at ${seq} tokens fits 120 GiB`);
      }
    }
  });

  it('refuses one sequence that cannot fit even with checkpointing, before training, naming the numbers and the fix', () => {
    const [long] = plans([onGpu('32b', 80, 32768)]);
    assert.ok('error' in long, JSON.stringify(long));
    assert.match(long.error, /^one sequence of 32768 tokens does not fit even with gradient checkpointing: it needs about [\d.]+ GiB .* and [\d.]+ GiB of the [\d.]+ GiB free can be used; try a maximum sequence length of at most (\d+),/);
    const most = Number(/at most (\d+)/.exec(long.error)?.[1]);
    // The suggestion is right: that length fits, one more tenth does not.
    const [fits, beyond] = plans([onGpu('32b', 80, most), onGpu('32b', 80, Math.ceil(most * 1.1))]);
    assert.equal(ok(fits).checkpointing, true);
    assert.ok('error' in beyond);
  });

  it('counts the loss chunk\'s float32 logits, the LoRA weights with their gradients and AdamW moments, and the dense mask', () => {
    const base = onGpu('7b', 80);
    const [plain, bigChunk, bigRank] = plans([base, { ...base, loss_chunk: 4 * LOSS_CHUNK }, { ...base, lora_rank: 64 }]);
    const vocab = QWEN['7b'].shape.vocab;
    assert.ok(ok(plain).fixed_bytes >= LOSS_CHUNK * vocab * 4 * 3, 'three float32 copies of a chunk\'s logits at least');
    assert.ok(ok(bigChunk).fixed_bytes - ok(plain).fixed_bytes >= 3 * LOSS_CHUNK * vocab * 4 * 3);
    assert.equal(ok(plain).lora_parameters, 40_370_176, 'r × (in + out) over 7 projections × 28 layers');
    assert.equal(ok(bigRank).fixed_bytes - ok(plain).fixed_bytes, (ok(bigRank).lora_parameters - ok(plain).lora_parameters) * 16, '16 bytes a LoRA parameter');
    // 32B on 80 GiB: rows are bounded by memory, not by the cap, so the sdpa fallback's mask costs row length.
    const [unmasked, masked] = plans([onGpu('32b', 80), onGpu('32b', 80, 2048, { dense_mask: true })]);
    assert.ok(ok(masked).row_tokens < ok(unmasked).row_tokens, `a [row × row] mask shortens rows: ${ok(masked).row_tokens} vs ${ok(unmasked).row_tokens}`);
  });

  it('says what is wrong with bad inputs', () => {
    const result = spawnSync(PYTHON, [PROBE], { input: JSON.stringify({ op: 'memory_plan', cases: [{ ...onGpu('7b', 80), lora_targets: ['q_proj', 'lm_head'] }] }), env: { ...process.env, PYTHONPATH: ENGINE_DIR }, encoding: 'utf8' });
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /unknown LoRA target modules \['lm_head'\]/);
  });
});
