"""Memory planning for a training job: whether to checkpoint gradients and how many tokens a packed row may hold,
from the model's shape and the memory left once its weights are loaded.

Pure Python (no torch), so that CI checks the arithmetic anywhere (test/engine.torchMemory.test.ts) and train.py
only feeds it numbers. The estimate is deliberately rough but errs on the large side: a plan that is too generous
fails mid-run with an out-of-memory error after minutes of work, one that is too careful only costs some speed.

What a step holds besides the frozen weights (TRAINING.md, "Speed"):
  - the LoRA weights (float32: peft keeps adapters in float32 over bf16 bases), their gradients and AdamW's two
    moments: 16 bytes a trainable parameter;
  - the loss chunk: LOSS_CHUNK positions' logits in the model's dtype, their float32 copy, its gradient and the
    softmax cross-entropy keeps beside it (about 3 float32 copies);
  - activations kept for the backward, per token: without gradient checkpointing every layer's (the flash /
    varlen kernels keep no [tokens × tokens] matrix); with it only each layer's input, plus one layer's worth
    while that layer is recomputed;
  - a safety margin for the allocator's fragmentation and the kernels' workspaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

GIB = 1024**3

#: The projections LoRA can target, and which of a layer's widths each maps from and to.
_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

#: Fraction of the free memory kept back for the allocator's fragmentation and kernel workspaces.
SAFETY_FRACTION = 0.10
#: Bytes kept back besides that fraction (cuBLAS/cuDNN workspaces, NCCL buffers, the CUDA graph pool).
SAFETY_BYTES = 768 * 1024**2
#: Largest packed row: beyond this, longer rows stop paying off (kernel efficiency is flat) and one bad estimate
#: costs more.
ROW_CAP = 16384


class NotEnoughMemory(Exception):
    """Even one sequence of max_seq_length does not fit (or the weights alone fill the GPU): the message names
    the numbers and what to change, for the job's `out_of_memory` error before training starts."""


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a Qwen2 config.json that decide the memory a step needs."""

    hidden: int
    layers: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim


@dataclass(frozen=True)
class MemoryPlan:
    """The plan and the estimate behind it (train.py logs it, so a wrong guess can be understood)."""

    checkpointing: bool
    row_tokens: int
    #: Memory the plan may use: the free memory less the safety margin.
    usable_bytes: int
    #: Fixed cost of a step: LoRA weights, gradients and AdamW moments, the loss chunk's logits.
    fixed_bytes: int
    #: Activation bytes per token of a packed row, without and with gradient checkpointing.
    per_token_bytes: int
    per_token_checkpointed_bytes: int
    #: Activations of one max_seq_length sequence without checkpointing (what decided `checkpointing`).
    sequence_bytes: int
    lora_parameters: int

    def describe(self) -> str:
        """One line for the job's log."""
        return (
            f"packed rows of up to {self.row_tokens} tokens; gradient checkpointing {'on' if self.checkpointing else 'off'} "
            f"(usable {_gib(self.usable_bytes)}, fixed {_gib(self.fixed_bytes)} for {self.lora_parameters:,} LoRA parameters and the loss chunk, "
            f"activations {self.per_token_bytes / 1024:.0f} KiB a token without checkpointing, {self.per_token_checkpointed_bytes / 1024:.0f} KiB with it)"
        )


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def lora_parameters(shape: ModelShape, rank: int, targets: Sequence[str]) -> int:
    """Trainable parameters of a LoRA adapter: r × (in + out) per targeted projection and layer."""
    widths = {
        "q_proj": (shape.hidden, shape.hidden),
        "k_proj": (shape.hidden, shape.kv_width),
        "v_proj": (shape.hidden, shape.kv_width),
        "o_proj": (shape.hidden, shape.hidden),
        "gate_proj": (shape.hidden, shape.intermediate),
        "up_proj": (shape.hidden, shape.intermediate),
        "down_proj": (shape.intermediate, shape.hidden),
    }
    unknown = [t for t in targets if t not in widths]
    if unknown:
        raise ValueError(f"unknown LoRA target modules {unknown}: expected some of {', '.join(_PROJECTIONS)}")
    return shape.layers * sum(rank * (widths[t][0] + widths[t][1]) for t in targets)


def layer_activation_bytes(shape: ModelShape, dtype_bytes: int, rank: int, targets: Sequence[str]) -> int:
    """Bytes one decoder layer keeps per token for its backward (no gradient checkpointing).

    Counted tensor by tensor for Qwen2's layer: the two RMSNorms' inputs and their float32 upcasts, q/k/v and the
    rotated q/k, the attention output (and the kernel's log-sum-exp, negligible), the o_proj input, the MLP's
    gate, up, SiLU(gate) and product, the residual sums; plus each LoRA branch's rank-wide intermediate and, since
    dropout may be on, a copy of its input. Rounded up rather than down.
    """
    h, kv, i = shape.hidden, shape.kv_width, shape.intermediate
    elements = (
        2 * h  # the two norms' inputs
        + 2 * h  # q and its rotated copy
        + 4 * kv  # k, v and the rotated k (v's repeat for GQA is transient)
        + 2 * h  # attention output, o_proj input
        + 4 * i  # gate, up, SiLU(gate), SiLU(gate) × up
        + 2 * h  # residual sums
    )
    float32_upcasts = 2 * h * 4  # Qwen2RMSNorm computes in float32
    lora_inputs = {"q_proj": h, "k_proj": h, "v_proj": h, "o_proj": h, "gate_proj": h, "up_proj": h, "down_proj": i}
    lora = sum(lora_inputs[t] + rank for t in targets)
    return elements * dtype_bytes + float32_upcasts + lora * dtype_bytes


def plan_memory(
    shape: ModelShape,
    dtype_bytes: int,
    free_bytes: int,
    max_seq_length: int,
    lora_rank: int,
    lora_targets: Sequence[str],
    loss_chunk: int,
    *,
    full_fine_tuning: bool = False,
    weight_count: int = 0,
    dense_mask: bool = False,
    row_cap: int = ROW_CAP,
) -> MemoryPlan:
    """Plans one job's memory (see the module comment). Raises NotEnoughMemory when even a single sequence of
    max_seq_length does not fit with gradient checkpointing on.

    Gradient checkpointing costs 20–30% speed, so it is on only when one max_seq_length sequence does not fit
    without it; the decision is a threshold on the usable memory, so more memory never turns it on. A row never
    holds fewer than max_seq_length tokens. `full_fine_tuning` counts every weight (`weight_count`) as trainable
    (gradient in the model's dtype, float32 AdamW moments). `dense_mask` (the sdpa fallback for packed rows)
    adds the [row × row] boolean mask transformers builds.
    """
    if max_seq_length < 1 or loss_chunk < 1 or dtype_bytes < 1:
        raise ValueError(f"max_seq_length ({max_seq_length}), loss_chunk ({loss_chunk}) and dtype_bytes ({dtype_bytes}) must be positive")
    usable = int(free_bytes * (1 - SAFETY_FRACTION)) - SAFETY_BYTES
    if full_fine_tuning:
        trainable = weight_count
        optimizer_bytes = trainable * (dtype_bytes + 8)
    else:
        trainable = lora_parameters(shape, lora_rank, lora_targets)
        optimizer_bytes = trainable * 16
    logits = loss_chunk * shape.vocab * (dtype_bytes + 3 * 4)
    fixed = optimizer_bytes + logits
    layer = layer_activation_bytes(shape, dtype_bytes, lora_rank, lora_targets)
    # Beside the layers: the embedding output and the final norm's input, output and float32 upcast.
    outside = 3 * shape.hidden * dtype_bytes + shape.hidden * 4
    per_token = shape.layers * layer + outside
    per_token_checkpointed = shape.layers * shape.hidden * dtype_bytes + layer + outside
    sequence = max_seq_length * per_token
    cap = max(row_cap, max_seq_length)

    def mask(row: int) -> int:
        return row * row if dense_mask else 0

    checkpointing = fixed + sequence + mask(max_seq_length) > usable
    per = per_token_checkpointed if checkpointing else per_token
    if fixed + max_seq_length * per + mask(max_seq_length) > usable:
        raise NotEnoughMemory(_not_enough(shape, free_bytes, usable, fixed, per, max_seq_length, dense_mask))
    row = min(cap, (usable - fixed) // per)
    while row > max_seq_length and fixed + row * per + mask(row) > usable:
        row = max(max_seq_length, int(row * 0.9))
    return MemoryPlan(
        checkpointing=checkpointing,
        row_tokens=int(max(max_seq_length, row)),
        usable_bytes=usable,
        fixed_bytes=fixed,
        per_token_bytes=per_token,
        per_token_checkpointed_bytes=per_token_checkpointed,
        sequence_bytes=sequence,
        lora_parameters=trainable,
    )


def _not_enough(shape: ModelShape, free: int, usable: int, fixed: int, per_token: int, max_seq_length: int, dense_mask: bool) -> str:
    if usable <= fixed:
        return (
            f"the model does not fit: {_gib(max(0, free))} is free once its weights are loaded, and training needs "
            f"{_gib(fixed + SAFETY_BYTES)} before the first token (adapter, optimizer state, loss chunk, workspace); "
            "try a smaller model, a smaller LoRA rank, or a GPU with more memory."
        )
    fits = (usable - fixed) // per_token
    if dense_mask:
        while fits > 1 and fixed + fits * per_token + fits * fits > usable:
            fits = int(fits * 0.9)
    suggestion = f"a maximum sequence length of at most {fits}" if fits >= 1 else "a smaller model"
    return (
        f"one sequence of {max_seq_length} tokens does not fit even with gradient checkpointing: it needs about "
        f"{_gib(fixed + max_seq_length * per_token)} ({per_token / 1024:.0f} KiB a token over {shape.layers} layers, plus "
        f"{_gib(fixed)} fixed) and {_gib(max(0, usable))} of the {_gib(max(0, free))} free can be used; try {suggestion}, "
        "a smaller model, or a GPU with more memory."
    )


def shape_of(config: object) -> ModelShape:
    """The shape from a transformers config (or anything with the same attribute names)."""
    hidden = int(getattr(config, "hidden_size"))
    heads = int(getattr(config, "num_attention_heads"))
    return ModelShape(
        hidden=hidden,
        layers=int(getattr(config, "num_hidden_layers")),
        intermediate=int(getattr(config, "intermediate_size")),
        vocab=int(getattr(config, "vocab_size")),
        heads=heads,
        kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
    )
