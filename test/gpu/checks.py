"""Checks of the torch engine that need torch, transformers, peft and an NVIDIA GPU (issue 8, "Verified on the
GPU machine"); test/engine.torchGpu.test.ts runs them and skips where `python3 -m finetune_torch check` says the
engine cannot run. Each subcommand prints one JSON object.

  packed --model DIR                 logits of a packed row vs the same examples one by one (through the varlen
                                     path: torch's kernel on a GPU, REFERENCE_VARLEN on the CPU, which has none)
  labels --model DIR --data FILE     trained tokens decode to the assistant turns (transformers' tokenizer)
  load --model DIR --adapter DIR     PeftModel.from_pretrained loads a checkpoint; it changes the logits
"""

import argparse
import json
import sys

import torch

from finetune_torch import attention
from finetune_torch.data import Message, build_example, check_labels, pack_batch, read_conversations
from finetune_torch.tokenizer import load_model_tokenizer

#: The GPU; the CPU where FINETUNE_TORCH_ALLOW_CPU=1 checks the engine on a machine without one.
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
#: The packed check's precision: bf16 as training runs on a GPU; float32 on the CPU, where bf16 rounding alone (CPU
#: kernels accumulate differently per segment than over the whole row) flips near-tied argmaxes of random weights.
PACKED_DTYPE = torch.bfloat16 if DEVICE == "cuda" else torch.float32

CONVERSATIONS = [
    [Message("user", "What is 2+2?"), Message("assistant", "It is 4.")],
    [Message("system", "Answer in French."), Message("user", "Hello there"), Message("assistant", "Bonjour !"), Message("user", "Weather?"), Message("assistant", "Il pleut.")],
    [Message("user", "Write code"), Message("assistant", "def f(x):\n    return x * 2\n")],
]


class ReferenceVarlen:
    """A fault-free REFERENCE stand-in for torch.nn.attention.varlen.varlen_attn, for the CPU only (torch 2.13 has no
    CPU kernel for it): the same signature and the same input contract as torch's (tokens × heads × dim tensors,
    equal head counts unless enable_gqa, int32 boundaries, causal exactly when window_size == (-1, 0)), computed
    segment by segment with sdpa. It checks attention.py's plumbing around the kernel, not the kernel itself.
    Counts its calls, so that a silent fallback to sdpa cannot pass for the varlen path."""

    def __init__(self):
        self.calls = 0

    def __call__(self, query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None, scale=None, window_size=(-1, -1), enable_gqa=False, seqused_k=None, block_table=None, num_splits=None):
        self.calls += 1
        assert query.dim() == 3 and key.dim() == 3 and value.dim() == 3, "tensors are [tokens, heads, dim]"
        assert enable_gqa or query.shape[1] == key.shape[1], f"Hq={query.shape[1]} and Hkv={key.shape[1]} differ without enable_gqa"
        assert cu_seq_q.dtype == torch.int32 and cu_seq_k.dtype == torch.int32, "boundaries are int32"
        assert int(cu_seq_q[-1]) == query.shape[0] and int(cu_seq_k[-1]) == key.shape[0], "boundaries end at the token count"
        causal = window_size == (-1, 0)  # as torch 2.13 decides it: a list here is not causal
        out = torch.empty_like(query)
        for a, b in zip(cu_seq_q.tolist()[:-1], cu_seq_q.tolist()[1:]):
            assert b - a <= max_q, f"a segment of {b - a} tokens exceeds max_q={max_q}"
            q, k, v = (t[a:b].transpose(0, 1) for t in (query, key, value))
            out[a:b] = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale, enable_gqa=enable_gqa).transpose(0, 1)
        return out


def packed(model_dir):
    from transformers import AutoModelForCausalLM

    tok = load_model_tokenizer(model_dir)
    examples = [build_example(tok, tok.chat, c, 4096) for c in CONVERSATIONS]
    (row,) = pack_batch(examples, 1 << 20)
    reference_kernel = ReferenceVarlen() if DEVICE == "cpu" else None
    implementation = attention.register(reference_kernel)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=PACKED_DTYPE, attn_implementation=implementation).to(DEVICE).eval()
    with torch.no_grad():
        ids = torch.tensor([row.input_ids], device=DEVICE)
        positions = torch.tensor([row.position_ids], device=DEVICE)
        extra = attention.packed_kwargs(row.cu_seqlens, row.max_seqlen, torch.device(DEVICE)) if implementation == attention.VARLEN else {}
        # No cache: with one, transformers would not read the packing from the position ids.
        together = model(input_ids=ids, position_ids=positions, use_cache=False, **extra).logits[0].float()
        # One by one, with the plain sdpa model (no packing at all): the reference.
        reference = AutoModelForCausalLM.from_pretrained(model_dir, dtype=PACKED_DTYPE, attn_implementation="sdpa").to(DEVICE).eval()
        worst = 0.0
        argmax_equal = True
        for k, i in enumerate(row.examples):
            alone = reference(input_ids=torch.tensor([examples[i].ids], device=DEVICE), use_cache=False).logits[0].float()
            part = together[row.cu_seqlens[k] : row.cu_seqlens[k + 1]]
            worst = max(worst, float((part - alone).abs().max()))
            argmax_equal = argmax_equal and bool((part.argmax(-1) == alone.argmax(-1)).all())
    # The backward through the varlen path (the training loop's): the same weighted sum of logits, packed and one
    # by one, must give the same gradient to the first layer's query projection (behind the repeat and transposes).
    weights = torch.Generator().manual_seed(5)
    scores = torch.randn(together.shape, generator=weights).to(DEVICE)
    model(input_ids=ids, position_ids=positions, use_cache=False, **extra).logits[0].float().mul(scores).sum().backward()
    for k, i in enumerate(row.examples):
        alone = reference(input_ids=torch.tensor([examples[i].ids], device=DEVICE), use_cache=False).logits[0].float()
        alone.mul(scores[row.cu_seqlens[k] : row.cu_seqlens[k + 1]]).sum().backward()
    packed_grad = model.model.layers[0].self_attn.q_proj.weight.grad.float()
    reference_grad = reference.model.layers[0].self_attn.q_proj.weight.grad.float()
    grad_diff = float((packed_grad - reference_grad).norm() / reference_grad.norm())
    kernel = "torch varlen_attn" if reference_kernel is None else f"reference per-segment sdpa stand-in ({reference_kernel.calls} calls)"
    return {
        "implementation": implementation,
        "kernel": kernel,
        "kernel_calls": None if reference_kernel is None else reference_kernel.calls,
        "dtype": str(PACKED_DTYPE),
        "max_abs_diff": worst,
        "argmax_equal": argmax_equal,
        "grad_relative_diff": grad_diff,
        "rows": 1,
        "examples": len(examples),
    }


def labels(model_dir, data_file):
    tok = load_model_tokenizer(model_dir)
    checked = 0
    for line, messages in read_conversations(data_file, lambda *a: None):
        example = build_example(tok, tok.chat, messages, 1 << 20, line)
        check_labels(tok, example)
        checked += 1
    return {"checked": checked, "transformers_tokenizer": tok.hf is not None}


def load(model_dir, adapter_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(DEVICE).eval()
    ids = torch.tensor([[1, 2, 3, 4, 5]], device=DEVICE)
    with torch.no_grad():
        before = base(input_ids=ids).logits.clone()
        model = PeftModel.from_pretrained(base, adapter_dir).eval()
        after = model(input_ids=ids).logits
    return {"loaded": True, "changed": float((after - before).abs().max()), "adapters": list(model.peft_config.keys())}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("check", choices=("packed", "labels", "load"))
    parser.add_argument("--model", required=True)
    parser.add_argument("--data")
    parser.add_argument("--adapter")
    args = parser.parse_args()
    if args.check == "packed":
        result = packed(args.model)
    elif args.check == "labels":
        result = labels(args.model, args.data)
    else:
        result = load(args.model, args.adapter)
    json.dump(result, sys.stdout)


main()
