"""The embedded engine's training step in plain PyTorch on the CPU, for bench/engine.bench.ts to compare against.

A Qwen2 decoder written here with torch only (no transformers): RMSNorm, rotary embeddings (rotate_half),
grouped-query causal attention, SwiGLU MLP, tied LM head; LoRA (B·A·x·alpha/r) on the chosen projections with the
base frozen; cross-entropy over the shifted labels; AdamW on the adapters. Prints one JSON line:
{"tokens_per_second": …, "cpu_tokens_per_second": …, "threads": …, "torch": "<version>"}: the best of --reps
repetitions, by wall clock and by the process's CPU time (time.process_time(), all its threads). With one thread
the CPU figure is what the step costs when it has a core to itself, which a busy machine's wall clock is not.

Usage: python3 engine_torch.py '<config json>' --seq 256 --rank 16 --alpha 32 --threads 1 --steps 5 --reps 3
(--threads 0: all CPUs)
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn.functional as F


class LoraLinear(torch.nn.Module):
    def __init__(self, n_in, n_out, bias, rank, alpha):
        super().__init__()
        self.base = torch.nn.Linear(n_in, n_out, bias=bias)
        self.base.requires_grad_(False)
        self.rank = rank
        if rank > 0:
            self.lora_a = torch.nn.Parameter(torch.empty(rank, n_in))
            torch.nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
            # Non-zero so the backward does the same work as after the first step.
            self.lora_b = torch.nn.Parameter(torch.randn(n_out, rank) * 0.01)
            self.scale = alpha / rank

    def forward(self, x):
        y = self.base(x)
        if self.rank > 0:
            y = y + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scale
        return y


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Layer(torch.nn.Module):
    def __init__(self, c, rank, alpha, targets):
        super().__init__()
        h, i = c["hidden_size"], c["intermediate_size"]
        self.heads, self.kv_heads = c["num_attention_heads"], c["num_key_value_heads"]
        self.head_dim = h // self.heads
        kv = self.kv_heads * self.head_dim
        self.eps = c["rms_norm_eps"]

        def lin(name, n_in, n_out, bias):
            return LoraLinear(n_in, n_out, bias, rank if name in targets else 0, alpha)

        self.q = lin("q_proj", h, h, True)
        self.k = lin("k_proj", h, kv, True)
        self.v = lin("v_proj", h, kv, True)
        self.o = lin("o_proj", h, h, False)
        self.gate = lin("gate_proj", h, i, False)
        self.up = lin("up_proj", h, i, False)
        self.down = lin("down_proj", i, h, False)
        self.norm1 = torch.nn.Parameter(torch.ones(h), requires_grad=False)
        self.norm2 = torch.nn.Parameter(torch.ones(h), requires_grad=False)

    def forward(self, x, cos, sin):
        t = x.shape[0]
        n = rms_norm(x, self.norm1, self.eps)
        q = self.q(n).view(t, self.heads, self.head_dim).transpose(0, 1)
        k = self.k(n).view(t, self.kv_heads, self.head_dim).transpose(0, 1)
        v = self.v(n).view(t, self.kv_heads, self.head_dim).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        group = self.heads // self.kv_heads
        k = k.repeat_interleave(group, dim=0)
        v = v.repeat_interleave(group, dim=0)
        scores = (q @ k.transpose(1, 2)) / math.sqrt(self.head_dim)
        mask = torch.ones(t, t, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
        attn = (scores.softmax(-1) @ v).transpose(0, 1).reshape(t, -1)
        x = x + self.o(attn)
        n = rms_norm(x, self.norm2, self.eps)
        return x + self.down(F.silu(self.gate(n)) * self.up(n))


class Qwen2(torch.nn.Module):
    def __init__(self, c, rank, alpha, targets):
        super().__init__()
        self.c = c
        self.embed = torch.nn.Parameter(torch.randn(c["vocab_size"], c["hidden_size"]) * 0.02, requires_grad=False)
        self.layers = torch.nn.ModuleList(Layer(c, rank, alpha, targets) for _ in range(c["num_hidden_layers"]))
        self.norm = torch.nn.Parameter(torch.ones(c["hidden_size"]), requires_grad=False)

    def forward(self, ids, labels):
        c = self.c
        d = c["hidden_size"] // c["num_attention_heads"]
        inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, d, 2).float() / d))
        freqs = torch.arange(ids.shape[0]).float()[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None], emb.sin()[None]
        x = self.embed[ids]
        for layer in self.layers:
            x = layer(x, cos, sin)
        logits = rms_norm(x, self.norm, c["rms_norm_eps"]) @ self.embed.t()
        return F.cross_entropy(logits[:-1], labels[1:], ignore_index=-100, reduction="sum")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seconds", type=float, default=1.5)
    p.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    a = p.parse_args()
    # 0: every CPU (torch may default to fewer, e.g. under OMP_NUM_THREADS).
    torch.set_num_threads(a.threads if a.threads > 0 else (os.cpu_count() or 1))
    torch.manual_seed(0)
    c = json.loads(a.config)
    model = Qwen2(c, a.rank, a.alpha, set(a.targets.split(",")))
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    ids = torch.randint(0, c["vocab_size"], (a.seq,))
    labels = ids.clone()
    labels[0] = -100

    def step():
        opt.zero_grad(set_to_none=False)
        loss = model(ids, labels) / (a.seq - 1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    for _ in range(2):
        step()
    best_wall = 0.0
    best_cpu = 0.0
    for _ in range(max(1, a.reps)):
        start = time.perf_counter()
        cpu_start = time.process_time()
        steps = 0
        while steps < a.steps or time.perf_counter() - start < a.seconds:
            step()
            steps += 1
        cpu = time.process_time() - cpu_start
        wall = time.perf_counter() - start
        best_wall = max(best_wall, steps * a.seq / wall)
        best_cpu = max(best_cpu, steps * a.seq / cpu)
    print(json.dumps({"tokens_per_second": best_wall, "cpu_tokens_per_second": best_cpu, "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
