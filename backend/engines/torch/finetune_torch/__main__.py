"""The torch engine process, started by the backend (``python3 -m finetune_torch <mode>`` with this package's
folder on PYTHONPATH):

  check   prints one JSON object: whether the engine can run here (torch, transformers, peft importable and an
          NVIDIA GPU present), the versions, the GPUs, and why not when not; exits 0 either way
  train   reads one ``train`` message on stdin, runs the job, exits (common/engineProtocol.ts)
  serve   answers ``chat``/``chat_cancel`` messages until stdin ends

stdout carries only protocol messages (``check``: its one object); anything for a person goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from typing import Any, Sequence

from .protocol import PROTOCOL_VERSION, Channel, EngineError

#: What the training loop and chat need beyond torch (the issue: nothing else is required).
REQUIRED_MODULES = ("torch", "transformers", "peft", "safetensors")


def _version(module: str) -> tuple[str | None, str | None]:
    """The module's version, or why it cannot be imported."""
    try:
        imported = importlib.import_module(module)
    except Exception as error:  # noqa: BLE001 - any import failure is a reason to report, not a crash
        return None, f"{type(error).__name__}: {error}"
    return str(getattr(imported, "__version__", "unknown")), None


def check() -> dict[str, Any]:
    """Whether this engine can run on this machine, and why not (what ``/v1/system`` shows)."""
    report: dict[str, Any] = {"protocol": PROTOCOL_VERSION, "python": platform.python_version(), "modules": {}, "gpus": []}
    missing: list[str] = []
    for module in REQUIRED_MODULES:
        version, why = _version(module)
        report["modules"][module] = version
        if version is None:
            missing.append(f"{module} ({why})")
    if sys.version_info < (3, 10):
        report["available"] = False
        report["reason"] = f"Python 3.10 or later is needed, this is {platform.python_version()}"
        return report
    if missing:
        report["available"] = False
        report["reason"] = "missing Python packages: " + "; ".join(missing)
        return report
    import torch

    if not torch.cuda.is_available():
        report["available"] = False
        report["reason"] = "no NVIDIA GPU is visible to torch (torch.cuda.is_available() is false)"
        return report
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        report["gpus"].append({"index": index, "name": props.name, "memory_total": int(props.total_memory)})
    report["available"] = True
    return report


def _run_mode(mode: str) -> int:
    channel = Channel()
    try:
        module = importlib.import_module(f".{mode}", __package__)
    except ImportError as error:
        message = f"the torch engine cannot {mode} here: {error}; `python3 -m finetune_torch check` says what is missing"
        if mode == "train":
            channel.error("engine_error", message)
        else:
            channel.log("error", message)
        return 1
    result: int = module.main(channel)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="finetune_torch", description="Finetune Studio's torch engine (JSON lines on stdio).")
    parser.add_argument("mode", choices=("check", "train", "serve"), help="check: can it run here; train: one job; serve: chat")
    args = parser.parse_args(argv)
    if args.mode == "check":
        print(json.dumps(check()))
        return 0
    try:
        return _run_mode(args.mode)
    except EngineError as error:
        Channel().error(error.code, str(error))
        return 1


if __name__ == "__main__":
    sys.exit(main())
