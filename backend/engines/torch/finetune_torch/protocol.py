"""The torch engine's side of the JSON-lines engine protocol (common/engineProtocol.ts): checking what the backend
writes before trusting it, and writing what the engine answers, one JSON object a line on stdout. Anything for a
person goes to stderr: stdout carries only protocol messages.

Pure Python (no torch), so that CI tests it anywhere.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from dataclasses import dataclass
from typing import Any, TextIO

#: Must equal ENGINE_PROTOCOL_VERSION in common/engineProtocol.ts (a test compares them).
PROTOCOL_VERSION = 1

#: Job error codes (common/api.ts JOB_ERROR_CODES).
JOB_ERROR_CODES = ("out_of_memory", "invalid_dataset", "nan_loss", "engine_crashed", "interrupted", "model_unavailable", "engine_error")
#: Chat error codes (common/engineProtocol.ts ChatErrorMessage).
CHAT_ERROR_CODES = ("model_unavailable", "cancelled", "engine_error", "out_of_memory")

LR_SCHEDULERS = ("cosine", "linear", "constant")
LORA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TRAINING_TYPES = ("lora", "full")


class EngineError(Exception):
    """A failure with its job error code; its message is for a person (what happened, what to do)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code if code in JOB_ERROR_CODES else "engine_error"


class Cancelled(Exception):
    """The backend closed stdin or sent SIGTERM: stop, report nothing."""


class StopFlag:
    """Set when the backend closes stdin or sends SIGTERM; checked between micro-batches."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def check(self) -> None:
        if self.event.is_set():
            raise Cancelled()


def _bad(where: str, what: str) -> EngineError:
    return EngineError("engine_error", f"protocol: {where} {what}")


def _obj(o: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    v = o.get(key)
    if not isinstance(v, dict):
        raise _bad(f"{where}.{key}", "must be an object")
    return v


def _str(o: dict[str, Any], key: str, where: str) -> str:
    v = o.get(key)
    if not isinstance(v, str):
        raise _bad(f"{where}.{key}", "must be a string")
    return v


def _str_or_none(o: dict[str, Any], key: str, where: str) -> str | None:
    v = o.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise _bad(f"{where}.{key}", "must be a string or null")
    return v


def _num(o: dict[str, Any], key: str, where: str) -> float:
    v = o.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _bad(f"{where}.{key}", "must be a finite number")
    return float(v)


def _int(o: dict[str, Any], key: str, where: str, minimum: int = 0) -> int:
    v = _num(o, key, where)
    if v != int(v) or v < minimum:
        raise _bad(f"{where}.{key}", f"must be an integer of at least {minimum}")
    return int(v)


@dataclass(frozen=True)
class ModelRef:
    id: str
    path: str


@dataclass(frozen=True)
class Hyperparameters:
    n_epochs: int
    batch_size: int
    learning_rate: float
    max_seq_length: int
    warmup_ratio: float
    lr_scheduler: str
    training_type: str
    lora_r: int
    lora_alpha: float
    lora_dropout: float
    lora_target_modules: tuple[str, ...]
    checkpoints: int
    eval_ratio: float


@dataclass(frozen=True)
class TrainSpec:
    job_id: str
    model: ModelRef
    training_file: str
    validation_file: str | None
    hyperparameters: Hyperparameters
    seed: int
    output_dir: str
    resume_from: str | None
    gpus: int


@dataclass(frozen=True)
class GenerationParams:
    temperature: float
    top_p: float
    top_k: int
    max_tokens: int
    repetition_penalty: float
    seed: int
    stop: tuple[str, ...]


@dataclass(frozen=True)
class ChatRequest:
    id: str
    model: ModelRef
    adapter: str | None
    messages: tuple[dict[str, str], ...]
    params: GenerationParams


@dataclass(frozen=True)
class ChatCancel:
    id: str


def _model_ref(o: dict[str, Any], where: str) -> ModelRef:
    m = _obj(o, "model", where)
    return ModelRef(_str(m, "id", f"{where}.model"), _str(m, "path", f"{where}.model"))


def _hyperparameters(o: dict[str, Any], where: str) -> Hyperparameters:
    h = _obj(o, "hyperparameters", where)
    w = f"{where}.hyperparameters"
    scheduler = _str(h, "lr_scheduler", w)
    if scheduler not in LR_SCHEDULERS:
        raise _bad(f"{w}.lr_scheduler", f"must be one of {', '.join(LR_SCHEDULERS)}")
    # Jobs stored before full fine-tuning existed have no training_type: they trained LoRA adapters.
    training_type = h.get("training_type", "lora")
    if training_type not in TRAINING_TYPES:
        raise _bad(f"{w}.training_type", f"must be one of {', '.join(TRAINING_TYPES)}")
    targets = h.get("lora_target_modules")
    if not isinstance(targets, list) or not targets or any(t not in LORA_TARGET_MODULES for t in targets):
        raise _bad(f"{w}.lora_target_modules", f"must be a non-empty list of {', '.join(LORA_TARGET_MODULES)}")
    return Hyperparameters(
        n_epochs=_int(h, "n_epochs", w, 1),
        batch_size=_int(h, "batch_size", w, 1),
        learning_rate=_num(h, "learning_rate", w),
        max_seq_length=_int(h, "max_seq_length", w, 1),
        warmup_ratio=_num(h, "warmup_ratio", w),
        lr_scheduler=scheduler,
        training_type=training_type,
        lora_r=_int(h, "lora_r", w, 1),
        lora_alpha=_num(h, "lora_alpha", w),
        lora_dropout=_num(h, "lora_dropout", w),
        lora_target_modules=tuple(targets),
        checkpoints=_int(h, "checkpoints", w, 1),
        eval_ratio=_num(h, "eval_ratio", w),
    )


def _train_spec(o: dict[str, Any]) -> TrainSpec:
    s = _obj(o, "spec", "train")
    w = "train.spec"
    return TrainSpec(
        job_id=_str(s, "job_id", w),
        model=_model_ref(s, w),
        training_file=_str(s, "training_file", w),
        validation_file=_str_or_none(s, "validation_file", w),
        hyperparameters=_hyperparameters(s, w),
        seed=_int(s, "seed", w),
        output_dir=_str(s, "output_dir", w),
        resume_from=_str_or_none(s, "resume_from", w),
        gpus=_int(s, "gpus", w),
    )


def _params(o: dict[str, Any], where: str) -> GenerationParams:
    p = _obj(o, "params", where)
    w = f"{where}.params"
    stop = p.get("stop", [])
    if not isinstance(stop, list) or any(not isinstance(s, str) for s in stop):
        raise _bad(f"{w}.stop", "must be a list of strings")
    return GenerationParams(
        temperature=_num(p, "temperature", w),
        top_p=_num(p, "top_p", w),
        top_k=_int(p, "top_k", w),
        max_tokens=_int(p, "max_tokens", w, 1),
        repetition_penalty=_num(p, "repetition_penalty", w),
        seed=_int(p, "seed", w),
        stop=tuple(stop),
    )


def _messages(o: dict[str, Any], where: str) -> tuple[dict[str, str], ...]:
    messages = o.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad(f"{where}.messages", "must be a non-empty list")
    out: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
            raise _bad(f"{where}.messages[{i}]", "must have a role (system, user or assistant) and a string content")
        out.append({"role": m["role"], "content": m["content"]})
    return tuple(out)


def parse_request(line: str) -> TrainSpec | ChatRequest | ChatCancel:
    """One line from the backend, checked; raises EngineError (code engine_error) saying what is wrong."""
    try:
        o = json.loads(line)
    except json.JSONDecodeError as error:
        raise EngineError("engine_error", f"protocol: a line is not JSON ({error.msg} at column {error.colno})") from error
    if not isinstance(o, dict):
        raise _bad("message", "must be an object")
    kind = o.get("type")
    if kind == "train":
        version = o.get("protocol")
        if version != PROTOCOL_VERSION:
            raise EngineError("engine_error", f"protocol: the backend speaks version {version}, this engine {PROTOCOL_VERSION}: update both together")
        return _train_spec(o)
    if kind == "chat":
        adapter = _str_or_none(o, "adapter", "chat")
        return ChatRequest(_str(o, "id", "chat"), _model_ref(o, "chat"), adapter, _messages(o, "chat"), _params(o, "chat"))
    if kind == "chat_cancel":
        return ChatCancel(_str(o, "id", "chat_cancel"))
    raise _bad("type", f"must be train, chat or chat_cancel, not {kind!r}")


def request_id(line: str) -> str | None:
    """The id of a chat line that failed to parse, when it has one (so that its error reaches its client)."""
    try:
        o = json.loads(line)
    except json.JSONDecodeError:
        return None
    return o.get("id") if isinstance(o, dict) and isinstance(o.get("id"), str) else None


def _finite(value: Any) -> Any:
    """JSON has no NaN: a non-finite float would make the line unparseable, so it is refused here."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"a non-finite number ({value}) cannot go on the wire")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class Channel:
    """Writes protocol messages to stdout, one line each, whole lines only (threads share it: serve streams
    tokens from a generation thread while the main thread answers)."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self._out = out
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(_finite(message), ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def log(self, level: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.send({"type": "log", "level": level, "message": message, **({"data": data} if data else {})})

    def error(self, code: str, message: str) -> None:
        self.send({"type": "error", "code": code if code in JOB_ERROR_CODES else "engine_error", "message": message})

    def chat_error(self, id_: str, code: str, message: str) -> None:
        self.send({"type": "chat_error", "id": id_, "code": code if code in CHAT_ERROR_CODES else "engine_error", "message": message})


def out_of_memory_message(peak_bytes: int | None, total_bytes: int | None, batch_size: int, max_seq_length: int) -> str:
    """What an out-of-memory error tells a person: the peak, and what to lower (TRAINING.md, "Reliability")."""
    gib = 1024**3
    peak = f"{peak_bytes / gib:.1f} GiB" if peak_bytes else "an unknown amount"
    of_total = f" of {total_bytes / gib:.1f} GiB" if total_bytes else ""
    hints = []
    if batch_size > 1:
        hints.append(f"a smaller batch size (now {batch_size}, try {max(1, batch_size // 2)})")
    if max_seq_length > 512:
        hints.append(f"a shorter maximum sequence length (now {max_seq_length}, try {max(512, max_seq_length // 2)})")
    hints.append("a smaller model, or a GPU with more memory")
    return f"the GPU ran out of memory at a peak of {peak}{of_total} allocated; try " + ", or ".join(hints) + "."
