"""Where the torch engine's base model comes from, and the engine's launcher.

``model_folder`` turns what the backend sent (``spec.model``: the hub id, and a folder or the id itself) into a
folder that transformers opens: the folder when it holds a model, else the model's snapshot in the Hugging Face
cache, else — only when the backend runs with ``--allow-downloads`` (FINETUNE_TORCH_ALLOW_DOWNLOAD=1) — a
download from the hub into that cache, reported as protocol ``log`` events. Anything else is a
``model_unavailable`` error that says where it looked and how to get the model; never a traceback.

``python -m finetune_torch.hub (--offline | --allow-downloads) MODE`` is how the backend starts the engine
(backend/runtime/engines.ts): it sets the engine's network rules in its own environment before transformers or
huggingface_hub is imported (both read them once, at import), then runs ``finetune_torch MODE``. Offline means
HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1 whatever the backend's environment said, so nothing the engine
loads can reach the network; the processes it starts (torchrun's workers) inherit the same rules. The mode
``env`` prints those rules as JSON instead (what the backend's tests read).

No torch here, and huggingface_hub only when a download is allowed and needed: CI runs this with a bare python3.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from typing import Any, Callable, Sequence

from .protocol import EngineError

#: Set by the launcher when the backend allows downloads (``--allow-downloads``).
ALLOW_ENV = "FINETUNE_TORCH_ALLOW_DOWNLOAD"
#: What huggingface_hub and transformers read to stay off the network.
OFFLINE_ENVS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
#: What training and chat open from a model repository; the rest (other weight formats, ONNX, GGUF, READMEs'
#: images) is never fetched.
ALLOW_PATTERNS = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "*.safetensors",
    "model.safetensors.index.json",
]
#: At most one progress event this often (seconds): a 15 GB download is minutes of events, not thousands.
PROGRESS_EVERY_S = 10.0

#: ``channel.log`` / ``Trainer.log``: level, message, data.
Log = Callable[[str, str, "dict[str, Any] | None"], None]


def downloads_allowed() -> bool:
    """Whether the backend lets this engine download a base model."""
    return os.environ.get(ALLOW_ENV) == "1"


def hub_cache_dir() -> str:
    """The hub cache folder, as huggingface_hub finds it: HF_HUB_CACHE, else $HF_HOME/hub, else
    $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub (backend/engines/torch/catalog.ts agrees)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return os.path.join(home, "hub")


def _is_model_folder(folder: str) -> bool:
    return bool(folder) and os.path.isfile(os.path.join(folder, "config.json"))


def _repo_dir(model_id: str) -> str:
    return os.path.join(hub_cache_dir(), "models--" + model_id.replace("/", "--"))


def missing_files(folder: str) -> list[str]:
    """What a model folder lacks to be loaded: config.json, tokenizer.json, the weights (one file, or every shard its
    index names). An interrupted download leaves a snapshot like that."""
    missing = [name for name in ("config.json", "tokenizer.json") if not os.path.isfile(os.path.join(folder, name))]
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(index):
        try:
            with open(index, encoding="utf-8") as file:
                shards = sorted(set(json.load(file).get("weight_map", {}).values()))
        except (OSError, ValueError, AttributeError):
            shards = []
            missing.append("a readable model.safetensors.index.json")
        missing += [shard for shard in shards if not os.path.isfile(os.path.join(folder, shard))]
    elif not os.path.isfile(os.path.join(folder, "model.safetensors")):
        missing.append("model.safetensors")
    return missing


def cached_snapshot(model_id: str) -> str | None:
    """The model's snapshot in the hub cache: the one ``refs/main`` names, else any with a config.json."""
    repo = _repo_dir(model_id)
    snapshots = os.path.join(repo, "snapshots")
    try:
        with open(os.path.join(repo, "refs", "main"), encoding="utf-8") as ref:
            main = ref.read().strip()
        if main and _is_model_folder(os.path.join(snapshots, main)):
            return os.path.join(snapshots, main)
    except OSError:
        pass  # No refs/main: the snapshots themselves decide.
    try:
        revisions = sorted(os.listdir(snapshots))
    except OSError:
        return None
    return next((os.path.join(snapshots, r) for r in revisions if _is_model_folder(os.path.join(snapshots, r))), None)


def model_folder(model_id: str, path: str, log: Log) -> str:
    """The folder to load ``model_id`` from (see the module comment). ``path`` is the backend's: a model folder,
    or the hub id when the model was not on the machine. Raises EngineError("model_unavailable")."""
    if _is_model_folder(path):
        return path
    cached = cached_snapshot(model_id)
    # A complete snapshot needs no network; an incomplete one is a download to resume, when that is allowed.
    lacking = missing_files(cached) if cached is not None else []
    if cached is not None and not lacking:
        return cached
    if cached is not None and not downloads_allowed():
        raise EngineError(
            "model_unavailable",
            f"the Hugging Face cache holds an incomplete {model_id} ({cached} has no {', no '.join(lacking)}): finish it with "
            f"`huggingface-cli download {model_id}`, or let the backend download it (--allow-downloads; in VS Code the "
            "setting finetune.localBackend.allowModelDownloads).",
        )
    if not downloads_allowed():
        looked = [p for p in (path,) if p and p != model_id] + [_repo_dir(model_id)]
        raise EngineError(
            "model_unavailable",
            f"{model_id} is not on this machine (looked in {' and '.join(looked)}). Download it into the Hugging Face "
            f"cache with `huggingface-cli download {model_id}`"
            + (f", or copy the model folder to {path}" if path and path != model_id else "")
            + ", or let the backend download it on first use (--allow-downloads; in VS Code the setting "
            "finetune.localBackend.allowModelDownloads).",
        )
    return _download(model_id, log)


def _download(model_id: str, log: Log) -> str:
    try:
        import huggingface_hub  # noqa: PLC0415 - needed only for a download
    except ImportError as error:
        raise EngineError(
            "model_unavailable",
            f"cannot download {model_id}: huggingface_hub is missing from this Python ({sys.executable}: {error}). "
            f"Install it (`{sys.executable} -m pip install huggingface_hub`), or download the model elsewhere with "
            f"`huggingface-cli download {model_id}` into {hub_cache_dir()}.",
        ) from error
    cache = str(getattr(getattr(huggingface_hub, "constants", None), "HF_HUB_CACHE", hub_cache_dir()))
    log("info", f"downloading {model_id} from the Hugging Face hub into {cache} (first use; the weights are large)", {"model": model_id, "phase": "start", "cache": cache})
    started = time.monotonic()
    try:
        # Nothing a download prints may reach stdout, the protocol channel (the Channel keeps its own handle).
        with contextlib.redirect_stdout(sys.stderr):
            folder = huggingface_hub.snapshot_download(model_id, allow_patterns=ALLOW_PATTERNS, tqdm_class=_progress_class(model_id, log))
    except Exception as error:  # noqa: BLE001 - every failure (network, disk, auth, a missing repo) is told plainly
        raise EngineError(
            "model_unavailable",
            f"cannot download {model_id} from the Hugging Face hub: {type(error).__name__}: {_first_line(error)}. Check the "
            f"network (HF_ENDPOINT, proxies) or download it with `huggingface-cli download {model_id}`.",
        ) from error
    size = _folder_bytes(folder)
    seconds = time.monotonic() - started
    log("info", f"downloaded {model_id}: {size_text(size)} in {seconds:.0f} s, into {folder}", {"model": model_id, "phase": "done", "bytes": size, "seconds": round(seconds, 1), "path": folder})
    if not _is_model_folder(folder):
        raise EngineError("model_unavailable", f"the download of {model_id} holds no config.json ({folder}): is it a model repository?")
    return folder


def size_text(size: int) -> str:
    """Bytes as the hub shows them: decimal GB, or MB below one GB."""
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no detail"


def _folder_bytes(folder: str) -> int:
    """Bytes of the files of a snapshot (its entries link into the cache's blobs: the targets count)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, name))
    return total


class _NullWriter:
    """Where the progress bars draw: nowhere (their numbers become log events instead)."""

    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass


class _Throttle:
    """Says when the next progress event is due (the bars update from several download threads)."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def due(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last < PROGRESS_EVERY_S:
                return False
            self._last = now
            return True


def _progress_class(model_id: str, log: Log) -> Any:
    """A tqdm class for snapshot_download that draws nothing and reports the bytes downloaded as a log event at most
    every PROGRESS_EVERY_S (from whichever byte counter updates: files and bytes are counted by several bars)."""
    from tqdm.auto import tqdm  # noqa: PLC0415 - a dependency of huggingface_hub

    throttle = _Throttle()

    class Progress(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["file"] = _NullWriter()
            kwargs.pop("name", None)
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            result = super().update(n)
            if self.unit == "B" and self.total and throttle.due():
                done, total = int(self.n), int(self.total)
                log("info", f"downloading {model_id}: {size_text(done)} of {size_text(total)}", {"model": model_id, "phase": "progress", "bytes": done, "total_bytes": total})
            return result

    return Progress


def set_network_rules(allow: bool, env: "os._Environ[str] | dict[str, str]" = os.environ) -> None:
    """The engine's environment for its network rules (see the module comment)."""
    if allow:
        env[ALLOW_ENV] = "1"
        # The backend's explicit permission wins over an offline switch left in the user's environment.
        for name in OFFLINE_ENVS:
            env.pop(name, None)
    else:
        env.pop(ALLOW_ENV, None)
        for name in OFFLINE_ENVS:
            env[name] = "1"
    # Progress goes to the protocol as log events; huggingface_hub's own bars would only fill the engine's log.
    env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"


def launch(argv: Sequence[str]) -> int:
    """``(--offline | --allow-downloads) MODE``: sets the rules, then runs the engine's MODE (or prints the rules)."""
    if len(argv) != 2 or argv[0] not in ("--offline", "--allow-downloads"):
        print("usage: python -m finetune_torch.hub (--offline | --allow-downloads) (check | train | serve | env)", file=sys.stderr)
        return 2
    set_network_rules(argv[0] == "--allow-downloads")
    if argv[1] == "env":
        rules: dict[str, Any] = {name: os.environ.get(name) for name in (*OFFLINE_ENVS, ALLOW_ENV)}
        try:
            from huggingface_hub import constants  # noqa: PLC0415 - what the library itself concluded, when present

            rules["huggingface_hub_offline"] = bool(constants.HF_HUB_OFFLINE)
        except ImportError:
            rules["huggingface_hub_offline"] = None
        print(json.dumps(rules))
        return 0
    from .__main__ import main  # noqa: PLC0415 - after the environment is set

    return main([argv[1]])


if __name__ == "__main__":
    sys.exit(launch(sys.argv[1:]))
