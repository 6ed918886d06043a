"""Several GPUs on one machine: the job under torchrun (data parallel, one process per GPU), and the process
bookkeeping that keeps it from leaving training processes behind. Rank 0 speaks the protocol; its lines are
relayed to this process's stdout."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Callable

import torch

from .protocol import Channel, EngineError, StopFlag, TrainSpec

#: Seconds a cancelled multi-GPU job gives its processes to stop before they are killed.
STOP_GRACE_SECONDS = 20.0


def _die_with_parent() -> Callable[[], None] | None:
    """What the torchrun child runs before exec: ask for SIGTERM when this launcher dies, even by SIGKILL (Linux
    prctl PR_SET_PDEATHSIG), so that a killed engine never leaves training processes behind (torchrun passes the
    SIGTERM on to its workers). libc is looked up here, before the fork: the child only makes the call."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)


def _descendants(pid: int, children: dict[int, list[int]]) -> list[int]:
    """Every process under `pid` in `children` (_process_tree): torchrun starts its workers in sessions of their
    own, so a process group signal would miss them."""
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _process_tree() -> dict[int, list[int]]:
    """Each process's children, from /proc (empty where there is none)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def _relay(source: IO[str], seen: set[str]) -> None:
    """Passes rank 0's protocol lines to our stdout as they come, noting which message types went by. Anything else
    a worker printed (a library's print) goes to stderr: stdout carries protocol messages only."""
    for line in source:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            message = None
        if isinstance(message, dict) and isinstance(message.get("type"), str):
            seen.add(message["type"])
            sys.stdout.write(line)
            sys.stdout.flush()
        else:
            sys.stderr.write(line)


def launch_torchrun(spec: TrainSpec, line: str, stop: StopFlag, channel: Channel, allow_cpu: bool) -> int:
    """Several GPUs: the same job under torchrun, one process per GPU; rank 0 speaks the protocol, relayed to our
    stdout. `--standalone` has torchrun's rendezvous listen on a free port (localhost:0), so two jobs at once do not
    clash. Cancelling (stdin closed, SIGTERM) goes to the workers, and torchrun ends with them; any process still
    running after STOP_GRACE_SECONDS is killed."""
    if torch.cuda.is_available():
        visible = torch.cuda.device_count()
        if visible < spec.gpus:
            raise EngineError("engine_error", f"the job asks for {spec.gpus} GPUs and {visible} are visible here: lower its GPU count to {visible}")
    elif not allow_cpu:
        raise EngineError("engine_error", f"the job asks for {spec.gpus} GPUs and torch.cuda.is_available() is false")
    os.makedirs(spec.output_dir, exist_ok=True)
    spec_file = os.path.join(spec.output_dir, "torch-train-message.json")
    with open(spec_file, "w", encoding="utf-8") as f:
        f.write(line)
    env = {**os.environ, "FINETUNE_TORCH_SPEC_FILE": spec_file}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={spec.gpus}", "--max_restarts=0", "-m", "finetune_torch", "train"]
    try:
        child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, encoding="utf-8", preexec_fn=_die_with_parent())
        assert child.stdout is not None
        seen: set[str] = set()
        relay = threading.Thread(target=_relay, args=(child.stdout, seen), daemon=True)
        relay.start()
        while child.poll() is None:
            if stop.event.wait(0.5):
                if seen & {"done", "error"}:
                    # The job is over (the backend closes stdin once it reads `done` or `error`): let the ranks finish
                    # shutting down rather than cancel them.
                    try:
                        child.wait(STOP_GRACE_SECONDS)
                        break
                    except subprocess.TimeoutExpired:
                        pass
                _stop_torchrun(child)
                relay.join(5)
                return 0 if "done" in seen else 1 if "error" in seen else 143
        relay.join(30)
        if child.returncode != 0 and not seen & {"error", "done"}:
            channel.error("engine_crashed", f"a training process exited with code {child.returncode} without saying why; the engine's log has its output")
        return child.returncode
    finally:
        # The workers read it when they start; it is no part of the job's output.
        os.remove(spec_file)


def _stop_torchrun(child: subprocess.Popen[str]) -> None:
    """SIGTERM to torchrun's workers, not to torchrun: their stop flags end them between rows, a cancelled worker
    exits 0 (see train.main), and torchrun, its workers all done, exits quietly. (Signalled itself, torchrun stops
    them too, but writes a traceback of its SignalException into the engine's log at every cancel.) Whatever of
    torchrun and its workers still runs after STOP_GRACE_SECONDS is killed."""
    tree = _process_tree()
    workers = _descendants(child.pid, tree)
    # torchrun's own children are its workers, one per rank.
    for pid in tree.get(child.pid, []):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline and (child.poll() is None or any(_alive(p) for p in workers)):
        time.sleep(0.1)
    for pid in [*workers, child.pid]:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    child.wait()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
