"""Training speed of the torch engine on one GPU (issue 8, "Speed"): tokens per second and model FLOPs
utilisation for Qwen2.5-0.5B, 1.5B and 7B shapes (random weights, nothing downloaded), LoRA r=16 on all seven
projections, sequences up to 2048 tokens, side by side in the same run with a plain transformers ``Trainer`` +
peft baseline that pads each micro-batch to its longest example and does not pack.

    npm run bench:torch                      # all three sizes, on the GPU
    npm run bench:torch -- --sizes 0.5b      # one
    python3 bench/torch_bench.py --steps 20 --sizes 7b
    python3 bench/torch_bench.py --tiny      # a tiny Qwen2 on the CPU, a few steps: checks the script runs end to end

Fair by construction: both sides train the same examples in the same order and the same batches (the Trainer's
sampler is sequential), the same LoRA configuration (r=16, alpha 32, no dropout, seven projections), bf16 weights
(the Trainer with ``bf16=True`` too), fused AdamW, sdpa for the baseline (the best attention plain transformers has
without extra packages: with a padding mask, torch picks its memory-efficient kernel), and the same memory plan
(finetune_torch.memory): gradient checkpointing on for both or neither, and the baseline's micro-batch holds as many
padded sequences as the engine's packed row holds tokens, with gradient accumulation up to the batch. The engine side
runs train.row_loss, the engine's own code for a row.

MFU (issue 8): model FLOPs per token 4N (forward 2N + activation gradients 2N; frozen weights get no weight
gradients), where N counts the weights of every matmul, the LM head included and the embedding lookup not, plus
attention 12·L·s·d per token (TRAINING.md; the PaLM convention, causal masking not discounted) with s the length of
the token's own example (packing keeps attention within examples) — so attention is summed as 12·L·d·s² per example,
not taken at the mean length. Over 989 TFLOP/s dense bf16 (H100 SXM) unless --peak-tflops says otherwise; in --tiny
mode on the CPU that peak makes the figure tiny, but it is computed the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "backend", "engines", "torch"))

import torch  # noqa: E402

from finetune_torch import attention, memory  # noqa: E402
from finetune_torch.data import IGNORE, Example, pack_batch  # noqa: E402
from finetune_torch.train import LOSS_CHUNK, _host_available_bytes, row_loss  # noqa: E402

H100_BF16_TFLOPS = 989.0

#: Qwen2.5 Instruct shapes (their config.json values), and a tiny Qwen2 for --tiny (the embedded engine's
#: tiny-qwen2-1m shape).
SHAPES: dict[str, dict[str, Any]] = {
    "0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, intermediate_size=4864, tie_word_embeddings=True, vocab_size=151936),
    "1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2, intermediate_size=8960, tie_word_embeddings=True, vocab_size=151936),
    "7b": dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4, intermediate_size=18944, tie_word_embeddings=False, vocab_size=152064),
    "tiny": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, intermediate_size=352, tie_word_embeddings=True, vocab_size=272),
}
GPU_SIZES = ["0.5b", "1.5b", "7b"]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_RANK = 16


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_bytes(device: torch.device) -> int:
    """What the memory plan works from: the GPU's free memory, or the host's on the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return _host_available_bytes() or 8 * 1024**3


def model_for(size: str, implementation: str, device: torch.device, max_len: int, dtype: torch.dtype) -> tuple[torch.nn.Module, memory.MemoryPlan]:
    """A random-weight Qwen2 of `size` in `dtype` with a fresh LoRA adapter, and the engine's memory plan for it."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(max_position_embeddings=32768, rope_theta=1e6, **SHAPES[size])
    config._attn_implementation = implementation
    torch.manual_seed(0)
    with torch.device(device):
        base = Qwen2ForCausalLM(config).to(dtype)
    base.config.use_cache = False
    plan = memory.plan_memory(memory.shape_of(config), torch.finfo(dtype).bits // 8, free_bytes(device), max_len, LORA_RANK, TARGETS, LOSS_CHUNK, dense_mask=implementation != attention.VARLEN)
    if plan.checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        base.enable_input_require_grads()
    lora = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM")
    return get_peft_model(base, lora), plan


def examples(count: int, max_len: int, vocab: int, seed: int) -> list[Example]:
    """Conversation-like examples: lengths spread from max_len / 16 to max_len, the first ~40% masked as the prompt."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        n = rng.randint(max(8, max_len // 16), max_len)
        ids = [rng.randrange(vocab) for _ in range(n)]
        prompt = int(n * 0.4)
        labels = [IGNORE] * prompt + ids[prompt:]
        out.append(Example(i, [], ids, labels, n - prompt, False))
    return out


def matmul_weights(model: torch.nn.Module) -> int:
    """N of the MFU formula: weights of every matmul of the base model (LM head included even when tied to the
    embedding, whose lookup is no matmul and is left out), LoRA's own small matrices left out."""
    return sum(module.weight.numel() for name, module in model.named_modules() if isinstance(module, torch.nn.Linear) and "lora_" not in name)


def step_flops(n: int, size: str, chunk: list[Example]) -> float:
    """Model FLOPs of one step over `chunk` (see the module comment)."""
    shape = SHAPES[size]
    attention_flops = sum(12 * shape["num_hidden_layers"] * shape["hidden_size"] * len(e.ids) ** 2 for e in chunk)
    return 4 * n * sum(len(e.ids) for e in chunk) + attention_flops


def ours(size: str, data: list[Example], batch: int, steps: int, device: torch.device, max_len: int, peak: float, dtype: torch.dtype) -> dict[str, Any]:
    """The engine's path: packed rows (varlen attention where torch has it on this device), train.row_loss."""
    # The varlen kernels take half precision only (as in train.py).
    implementation = attention.register() if device.type == "cuda" and dtype == torch.bfloat16 else "sdpa"
    model, plan = model_for(size, implementation, device, max_len, dtype)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, fused=device.type == "cuda")
    n = matmul_weights(model)
    tokens = 0
    flops = 0.0
    elapsed = 0.0
    for step in range(steps + 2):
        chunk = data[step * batch : (step + 1) * batch]
        rows = pack_batch(chunk, plan.row_tokens)
        trained = sum(r.trained_tokens for r in rows)
        synchronize(device)
        t0 = time.perf_counter()
        for row in rows:
            row_loss(model, row, device, implementation == attention.VARLEN, 1.0 / trained)
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        if step >= 2:  # the first steps warm up kernels and the allocator
            elapsed += time.perf_counter() - t0
            tokens += sum(len(e.ids) for e in chunk)
            flops += step_flops(n, size, chunk)
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"tokens_per_second": tokens / elapsed, "mfu": flops / elapsed / peak, "checkpointing": plan.checkpointing, "row_tokens": plan.row_tokens, "attention": implementation}


def baseline(size: str, data: list[Example], batch: int, steps: int, device: torch.device, max_len: int, peak: float, dtype: torch.dtype) -> dict[str, Any]:
    """transformers Trainer + peft: padding to the longest of each micro-batch, no packing, sdpa, bf16."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    model, plan = model_for(size, "sdpa", device, max_len, dtype)
    n = matmul_weights(model)
    # As many padded sequences a micro-batch as the engine's row holds tokens (a divisor of the batch).
    micro = max(d for d in range(1, batch + 1) if batch % d == 0 and (d == 1 or d * max_len <= plan.row_tokens))

    class Rows(torch.utils.data.Dataset[dict[str, list[int]]]):
        def __len__(self) -> int:
            return len(data)

        def __getitem__(self, i: int) -> dict[str, list[int]]:
            return {"input_ids": data[i].ids, "labels": data[i].labels}

    def collate(items: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        longest = max(len(x["input_ids"]) for x in items)
        ids = torch.full((len(items), longest), 0, dtype=torch.long)
        labels = torch.full((len(items), longest), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(items), longest), dtype=torch.long)
        for r, x in enumerate(items):
            k = len(x["input_ids"])
            ids[r, :k] = torch.tensor(x["input_ids"])
            labels[r, :k] = torch.tensor(x["labels"])
            mask[r, :k] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    class InOrder(Trainer):
        """The same batches as the engine side: no shuffling."""

        def _get_train_sampler(self, *args: Any, **kwargs: Any) -> torch.utils.data.Sampler[int]:
            return torch.utils.data.SequentialSampler(Rows())

    timings: list[float] = []

    class Clock(TrainerCallback):
        """Times each optimizer step, from its first micro-batch's forward to after the optimizer."""

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            synchronize(device)
            self.t0 = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            synchronize(device)
            timings.append(time.perf_counter() - self.t0)

    # The Trainer wants an output folder even when it saves nothing: a temporary one, removed afterwards.
    scratch = tempfile.TemporaryDirectory(prefix=f"bench-trainer-{size}-")
    args = TrainingArguments(
        output_dir=scratch.name,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=batch // micro,
        max_steps=steps + 2,
        bf16=dtype == torch.bfloat16,
        use_cpu=device.type == "cpu",
        learning_rate=1e-4,
        max_grad_norm=1.0,
        logging_steps=10_000,
        save_strategy="no",
        report_to="none",
        dataloader_drop_last=True,
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    trainer = InOrder(model=model, args=args, train_dataset=Rows(), data_collator=collate, callbacks=[Clock()])
    trainer.train()
    timed = list(range(2, steps + 2))
    elapsed = sum(timings[i] for i in timed)
    tokens = sum(len(e.ids) for i in timed for e in data[i * batch : (i + 1) * batch])
    flops = sum(step_flops(n, size, data[i * batch : (i + 1) * batch]) for i in timed)
    del trainer, model
    scratch.cleanup()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"tokens_per_second": tokens / elapsed, "mfu": flops / elapsed / peak, "micro_batch": micro, "accumulation": batch // micro, "checkpointing": plan.checkpointing}


def main() -> None:
    parser = argparse.ArgumentParser(description="Training tokens/s and MFU: the torch engine vs a transformers Trainer + peft baseline.")
    parser.add_argument("--sizes", nargs="+", default=None, choices=list(SHAPES), help="model shapes (default: 0.5b 1.5b 7b; tiny with --tiny)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps after 2 warm-up steps (default 12; 3 with --tiny)")
    parser.add_argument("--batch", type=int, default=None, help="examples a step (default 8; 4 with --tiny)")
    parser.add_argument("--max-len", type=int, default=None, help="longest example (default 2048; 256 with --tiny)")
    parser.add_argument("--device", default=None, help="cuda (default) or cpu (default with --tiny)")
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default=None, help="weights and compute (default bfloat16; float32 with --tiny, as CPUs without bf16 units crawl in bf16)")
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_TFLOPS, help="the device's dense bf16 peak for MFU (default: H100 SXM, 989)")
    parser.add_argument("--tiny", action="store_true", help="a tiny Qwen2 on the CPU for a few steps: checks that the script runs end to end")
    parser.add_argument("--json", action="store_true", help="also print one JSON object a size (for tests)")
    args = parser.parse_args()
    sizes = args.sizes or (["tiny"] if args.tiny else GPU_SIZES)
    steps = args.steps or (3 if args.tiny else 12)
    batch = args.batch or (4 if args.tiny else 8)
    max_len = args.max_len or (256 if args.tiny else 2048)
    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    dtype = getattr(torch, args.dtype or ("float32" if args.tiny else "bfloat16"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench: no GPU is visible to torch; run on the GPU machine, or with --tiny to check the script on the CPU")
    peak = args.peak_tflops * 1e12
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {name}, {str(dtype).removeprefix('torch.')}, sequences up to {max_len} tokens, batch {batch}, {steps} timed steps, LoRA r={LORA_RANK} on 7 projections, peak {args.peak_tflops:g} TFLOP/s")
    print(f"{'model':<8}{'baseline tok/s':>16}{'ours tok/s':>14}{'speed-up':>10}{'ours MFU':>10}{'base MFU':>10}")
    for size in sizes:
        data = examples(batch * (steps + 2), max_len, SHAPES[size]["vocab_size"], seed=1)
        base = baseline(size, data, batch, steps, device, max_len, peak, dtype)
        mine = ours(size, data, batch, steps, device, max_len, peak, dtype)
        speedup = mine["tokens_per_second"] / base["tokens_per_second"]
        print(f"{size:<8}{base['tokens_per_second']:>16.0f}{mine['tokens_per_second']:>14.0f}{speedup:>9.2f}×{mine['mfu'] * 100:>9.3g}%{base['mfu'] * 100:>9.3g}%")
        if args.json:
            print(json.dumps({"size": size, "device": name, "dtype": str(dtype), "baseline": base, "ours": mine, "speedup": speedup, "peak_tflops": args.peak_tflops}))


if __name__ == "__main__":
    main()
