"""Checks of the torch engine that need torch, transformers, peft and an NVIDIA GPU (issue 8, "Verified on the
GPU machine"); test/engine.torchGpu.test.ts runs them and skips where `python3 -m finetune_torch check` says the
engine cannot run. Each subcommand prints one JSON object.

  packed --model DIR                 logits of a packed row vs the same examples one by one
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

CONVERSATIONS = [
    [Message("user", "What is 2+2?"), Message("assistant", "It is 4.")],
    [Message("system", "Answer in French."), Message("user", "Hello there"), Message("assistant", "Bonjour !"), Message("user", "Weather?"), Message("assistant", "Il pleut.")],
    [Message("user", "Write code"), Message("assistant", "def f(x):\n    return x * 2\n")],
]


def packed(model_dir):
    from transformers import AutoModelForCausalLM

    tok = load_model_tokenizer(model_dir)
    examples = [build_example(tok, tok.chat, c, 4096) for c in CONVERSATIONS]
    (row,) = pack_batch(examples, 1 << 20)
    implementation = attention.register()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, attn_implementation=implementation).to(DEVICE).eval()
    with torch.no_grad():
        ids = torch.tensor([row.input_ids], device=DEVICE)
        positions = torch.tensor([row.position_ids], device=DEVICE)
        extra = attention.packed_kwargs(row.cu_seqlens, row.max_seqlen, torch.device(DEVICE)) if implementation == attention.VARLEN else {}
        # No cache: with one, transformers would not read the packing from the position ids.
        together = model(input_ids=ids, position_ids=positions, use_cache=False, **extra).logits[0].float()
        # One by one, with the plain sdpa model (no packing at all): the reference.
        reference = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, attn_implementation="sdpa").to(DEVICE).eval()
        worst = 0.0
        argmax_equal = True
        for k, i in enumerate(row.examples):
            alone = reference(input_ids=torch.tensor([examples[i].ids], device=DEVICE), use_cache=False).logits[0].float()
            part = together[row.cu_seqlens[k] : row.cu_seqlens[k + 1]]
            worst = max(worst, float((part - alone).abs().max()))
            argmax_equal = argmax_equal and bool((part.argmax(-1) == alone.argmax(-1)).all())
    return {"implementation": implementation, "max_abs_diff": worst, "argmax_equal": argmax_equal, "rows": 1, "examples": len(examples)}


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
