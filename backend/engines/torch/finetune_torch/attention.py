"""Attention for packed rows (TRAINING.md, "Speed"): several examples in one row must not attend to each other.

The fastest path torch offers for that is variable-length flash attention (``torch.nn.attention.varlen.
varlen_attn``, torch >= 2.10), which takes the packed tokens with the cumulative example boundaries
(``cu_seqlens``) and never builds a mask. It is registered with transformers' AttentionInterface as
``finetune_varlen`` and fed the boundaries through the model's forward kwargs (``cu_seq_lens_q`` …, the names
transformers passes down to attention). Where it is missing, the engine uses ``sdpa`` with packed
``position_ids``: transformers then builds a per-example causal mask — correct, slower.

Checked by the packed-vs-unpacked logits test (test/gpu/checks.py ``packed``): on a GPU with torch's kernel; on
the CPU, where torch's varlen_attn has no kernel at all (``aten::_flash_attention_forward`` is CUDA-only in torch
2.13), with a per-segment sdpa stand-in of the same signature passed to ``register``, so that everything around the
kernel (the GQA repeat, the transposes, the boundaries' plumbing through transformers, the registration) is checked
even there.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

#: The attn_implementation name under which the varlen path is registered.
VARLEN = "finetune_varlen"


def _varlen_function() -> Any | None:
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: PLC0415 - torch >= 2.10 only
    except ImportError:
        return None
    return varlen_attn


def _call_varlen(fn: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int, scale: float | None) -> torch.Tensor:
    """Calls varlen_attn causally whatever its release's keyword names (they changed between releases)."""
    params = inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {}
    if "is_causal" in params:
        kwargs["is_causal"] = True
    elif "causal" in params:
        kwargs["causal"] = True
    elif "window_size" in params:
        # A tuple: torch 2.13 decides causality with `window_size == (-1, 0)`, which a list never equals (it then
        # ran a (-1, 0) sliding window instead on the flash backend, and the cuDNN backend refuses any window).
        kwargs["window_size"] = (-1, 0)
    if scale is not None and "scale" in params:
        kwargs["scale"] = scale
    out = fn(q, k, v, cu, cu, max_len, max_len, **kwargs)
    return out[0] if isinstance(out, tuple) else out


def register(varlen: Any | None = None) -> str:
    """Registers the varlen path when this torch has it (and a GPU runs it); the attn_implementation to load models
    with. `varlen` replaces torch's kernel with a function of the same signature: test/gpu/checks.py passes a
    per-segment sdpa reference to check this module's plumbing on the CPU."""
    fn = varlen if varlen is not None else _varlen_function()
    if fn is None or (varlen is None and not torch.cuda.is_available()):
        return "sdpa"
    from transformers import AttentionInterface  # noqa: PLC0415

    try:
        from transformers import AttentionMaskInterface  # noqa: PLC0415
    except ImportError:
        from transformers.masking_utils import AttentionMaskInterface  # noqa: PLC0415

    from transformers.integrations.sdpa_attention import sdpa_attention_forward  # noqa: PLC0415

    def varlen_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: Any, scaling: float | None = None, dropout: float = 0.0, **kwargs: Any) -> tuple[torch.Tensor, Any]:
        # transformers hands [batch, heads, tokens, dim]; a packed batch is one row with its boundaries.
        cu = kwargs.get("cu_seq_lens_q")
        max_len = kwargs.get("max_length_q")
        if query.shape[0] != 1 or cu is None or max_len is None:
            # Not a packed row (a checkpoint's sample being generated, with its KV cache): plain causal sdpa.
            result: tuple[torch.Tensor, Any] = sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
            return result
        q = query[0].transpose(0, 1)
        k = key[0].transpose(0, 1)
        v = value[0].transpose(0, 1)
        if k.shape[1] != q.shape[1]:
            # Grouped-query attention: repeat each KV head for its group of query heads.
            repeat = q.shape[1] // k.shape[1]
            k = k.repeat_interleave(repeat, dim=1)
            v = v.repeat_interleave(repeat, dim=1)
        out = _call_varlen(fn, q.contiguous(), k.contiguous(), v.contiguous(), cu.to(torch.int32), int(max_len), scaling)
        return out.unsqueeze(0), None

    AttentionInterface.register(VARLEN, varlen_attention)
    # No mask at all: the boundaries are the mask.
    AttentionMaskInterface.register(VARLEN, lambda *args, **kwargs: None)
    return VARLEN


def packed_kwargs(cu_seqlens: list[int], max_seqlen: int, device: torch.device) -> dict[str, Any]:
    """The forward kwargs that carry a packed row's boundaries to the varlen attention."""
    cu = torch.tensor(cu_seqlens, dtype=torch.int32, device=device)
    return {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": max_seqlen, "max_length_k": max_seqlen}
