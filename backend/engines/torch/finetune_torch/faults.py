"""Faults injected on purpose (TEST ONLY): an out-of-memory error or a NaN loss cannot be provoked on a machine
without a GPU, so the tests (test/engine.torchGpu.test.ts) make them happen at a chosen place and check how the
engine reports them. Nothing sets FINETUNE_TORCH_FAULT outside those tests."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .protocol import EngineError

#: torch >= 2.5 names it at the top level; older releases only under torch.cuda.
OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)

#: TEST ONLY: makes a fault happen that a CPU cannot provoke, so the tests check how the engine reports it:
#: `out_of_memory@N` raises torch.OutOfMemoryError in step N's forward, `out_of_memory@sample:N` /
#: `out_of_memory@eval:N` in step N's checkpoint sample / evaluation, `nan_loss@N` makes step N's loss NaN.
FAULT_ENV = "FINETUNE_TORCH_FAULT"


@dataclass(frozen=True)
class Fault:
    """An injected fault (FAULT_ENV): what happens, where (`step`, `sample` or `eval`) and at which step."""

    kind: str
    where: str
    step: int

    @staticmethod
    def from_env() -> Fault | None:
        value = os.environ.get(FAULT_ENV, "")
        if value == "":
            return None
        kind, _, at = value.partition("@")
        where, _, step = at.rpartition(":")
        where = where or "step"
        valid = kind in ("out_of_memory", "nan_loss") and where in ("step", "sample", "eval") and step.isdigit() and not (kind == "nan_loss" and where != "step")
        if not valid:
            raise EngineError(
                "engine_error",
                f"{FAULT_ENV}={value!r} is not understood: expected out_of_memory@N, out_of_memory@sample:N, out_of_memory@eval:N or nan_loss@N (test only)",
            )
        return Fault(kind, where, int(step))

    def hits(self, kind: str, where: str, step: int) -> bool:
        return self.kind == kind and self.where == where and self.step == step

    def out_of_memory(self, where: str, step: int) -> None:
        """Raises the real torch.OutOfMemoryError when this is the injected fault's place."""
        if self.hits("out_of_memory", where, step):
            raise OUT_OF_MEMORY(f"CUDA out of memory (injected by {FAULT_ENV} at {where} {step})")
