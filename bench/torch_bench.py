"""Training speed of the torch engine on one GPU (issue 8, "Speed"): tokens per second and model FLOPs
utilisation for Qwen2.5-0.5B, 1.5B and 7B shapes (random weights, nothing downloaded), LoRA r=16 on all seven
projections, sequences up to 2048 tokens, side by side in the same run with a plain transformers ``Trainer`` +
peft baseline that pads each batch to its longest example and does not pack. Both train on the same examples.

    npm run bench:torch                      # all three sizes
    npm run bench:torch -- --sizes 0.5b      # one
    python3 bench/torch_bench.py --steps 20 --sizes 7b

MFU counts 4N FLOPs per trained-on token (forward 2N + activation gradients 2N; frozen weights get no weight
gradients; N includes the LM head) plus causal attention (forward 2·L·s·d per token over the example's own
length s, times 3 with backward), over 989 TFLOP/s dense bf16 (H100 SXM). Run on the GPU machine only.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "backend", "engines", "torch"))

import torch  # noqa: E402

from finetune_torch import attention  # noqa: E402
from finetune_torch.data import IGNORE, Example, pack_batch  # noqa: E402

H100_BF16_FLOPS = 989e12

#: Qwen2.5 Instruct shapes (their config.json values).
SHAPES = {
    "0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, intermediate_size=4864, tie_word_embeddings=True),
    "1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2, intermediate_size=8960, tie_word_embeddings=True),
    "7b": dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4, intermediate_size=18944, tie_word_embeddings=False),
}
VOCAB = 151936
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def model_for(size: str, implementation: str) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=VOCAB, max_position_embeddings=32768, rope_theta=1e6, **SHAPES[size])
    config._attn_implementation = implementation
    with torch.device("cuda"):
        base = Qwen2ForCausalLM(config).to(torch.bfloat16)
    base.config.use_cache = False
    weights = sum(p.numel() * 2 for p in base.parameters())
    free, _ = torch.cuda.mem_get_info()
    if weights > (free + weights) / 3:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        base.enable_input_require_grads()
    return get_peft_model(base, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM"))


def examples(count: int, max_len: int, seed: int) -> list[Example]:
    """Conversation-like examples: lengths spread from 128 to max_len, the first ~40% masked as the prompt."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        n = rng.randint(128, max_len)
        ids = [rng.randrange(1000, VOCAB - 1000) for _ in range(n)]
        prompt = int(n * 0.4)
        labels = [IGNORE] * prompt + ids[prompt:]
        out.append(Example(i, [], ids, labels, n - prompt, False))
    return out


def flops_per_token(model: torch.nn.Module, size: str, mean_len: float) -> float:
    shape = SHAPES[size]
    n = sum(p.numel() for p in model.get_base_model().parameters())
    if shape["tie_word_embeddings"]:
        n += VOCAB * shape["hidden_size"]  # the LM head's matmul is done even though its weight is shared
    attn = 3 * 2 * shape["num_hidden_layers"] * mean_len * shape["hidden_size"]
    return 4 * n + attn


def ours(size: str, data: list[Example], batch: int, steps: int) -> tuple[float, float]:
    implementation = attention.register()
    model = model_for(size, implementation)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, fused=True)
    inner = model.get_base_model()
    tokens = 0
    elapsed = 0.0
    for step in range(steps + 2):
        chunk = data[(step * batch) % len(data) :][:batch]
        rows = pack_batch(chunk, 16384)
        trained = sum(r.trained_tokens for r in rows)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for row in rows:
            ids = torch.tensor([row.input_ids], device="cuda")
            positions = torch.tensor([row.position_ids], device="cuda")
            extra = attention.packed_kwargs(row.cu_seqlens, row.max_seqlen, torch.device("cuda")) if implementation == attention.VARLEN else {}
            hidden = inner.model(input_ids=ids, position_ids=positions, use_cache=False, **extra).last_hidden_state[0]
            labels = torch.tensor(row.labels, device="cuda")[1:]
            where = (labels != IGNORE).nonzero(as_tuple=True)[0]
            loss = torch.zeros((), device="cuda")
            for start in range(0, where.numel(), 4096):
                at = where[start : start + 4096]
                loss = loss + torch.nn.functional.cross_entropy(inner.lm_head(hidden[at]).float(), labels[at], reduction="sum")
            (loss / trained).backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= 2:  # the first steps warm up kernels and the allocator
            elapsed += time.perf_counter() - t0
            tokens += sum(len(e.ids) for e in chunk)
    rate = tokens / elapsed
    per_token = flops_per_token(model, size, sum(len(e.ids) for e in data) / len(data))
    del model, optimizer
    torch.cuda.empty_cache()
    return rate, rate * per_token / H100_BF16_FLOPS


def baseline(size: str, data: list[Example], batch: int, steps: int) -> float:
    """transformers Trainer + peft, padding to the longest of each batch, no packing, sdpa, bf16."""
    from transformers import Trainer, TrainingArguments

    model = model_for(size, "sdpa")

    class Rows(torch.utils.data.Dataset):
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
            n = len(x["input_ids"])
            ids[r, :n] = torch.tensor(x["input_ids"])
            labels[r, :n] = torch.tensor(x["labels"])
            mask[r, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    timings: list[float] = []

    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            torch.cuda.synchronize()
            timings.append(time.perf_counter() - self.t0)

    args = TrainingArguments(
        output_dir=os.path.join("/tmp", f"bench-trainer-{size}"),
        per_device_train_batch_size=batch,
        max_steps=steps + 2,
        bf16=True,
        learning_rate=1e-4,
        logging_steps=10_000,
        save_strategy="no",
        report_to=[],
        dataloader_drop_last=True,
        remove_unused_columns=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Rows(), data_collator=collate, callbacks=[Clock()])
    trainer.train()
    # Tokens the baseline trained on per step: the same examples, in Trainer's (shuffled) order: use the mean.
    mean_tokens = batch * sum(len(e.ids) for e in data) / len(data)
    rate = mean_tokens * len(timings[2:]) / sum(timings[2:])
    del trainer, model
    torch.cuda.empty_cache()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-len", type=int, default=2048)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, sequences 128–{args.max_len} tokens, batch {args.batch}, LoRA r=16 on 7 projections")
    print(f"{'model':<8}{'baseline tok/s':>16}{'ours tok/s':>14}{'speed-up':>10}{'ours MFU':>10}")
    for size in args.sizes:
        data = examples(args.batch * (args.steps + 2), args.max_len, seed=1)
        base_rate = baseline(size, data, args.batch, args.steps)
        rate, mfu = ours(size, data, args.batch, args.steps)
        print(f"{size:<8}{base_rate:>16.0f}{rate:>14.0f}{rate / base_rate:>9.2f}×{mfu * 100:>9.1f}%")


if __name__ == "__main__":
    main()
