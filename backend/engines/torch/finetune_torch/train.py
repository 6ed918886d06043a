"""``train`` mode: one job, LoRA SFT of a Qwen2 model with torch + transformers + peft on NVIDIA GPUs.

The data, its order, the steps, the learning rate of each step and the checkpoint steps are data.py's — the
embedded engine's, bit for bit — so the two engines train on the same batches. What this engine adds is speed:
bf16 weights, a step's examples packed into few rows with attention kept within each example
(attention.py), the loss computed only at trained positions in chunks (no [tokens × vocabulary] logits),
fused AdamW, gradient checkpointing when the model is big for the memory, optional torch.compile, and several
GPUs through torchrun (launch.py; gradients summed across ranks, so the loss stays normalised over the whole
step's trained tokens).

Status: written without a GPU (none was lent to the sessions that wrote it). test/engine.torchGpu.test.ts runs on
the CPU with FINETUNE_TORCH_ALLOW_CPU=1 everything a CPU can honestly run: the training loop in float32 and bf16,
several processes through torchrun (gloo in place of NCCL), the memory plan (memory.py), out-of-memory and NaN
reports (injected through faults.py), the varlen attention's plumbing (with a reference stand-in for torch's
CUDA-only kernel) and the benchmark's --tiny mode. What only a GPU can show: NCCL, the flash/cuDNN varlen kernel
itself, fused AdamW's CUDA kernel, real out-of-memory, the plan's estimates against real peaks, and the speed.
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
from dataclasses import replace
from typing import Any, Callable

import torch

from . import attention, memory
from .data import (
    IGNORE,
    DataError,
    Dataset,
    Example,
    Message,
    PackedRow,
    batch_of,
    epoch_order,
    learning_rate,
    load_dataset,
    pack_batch,
    plan_run,
    prompt_ids,
)
from .hub import model_folder
from .faults import OUT_OF_MEMORY, Fault
from .launch import launch_torchrun
from .protocol import Cancelled, Channel, EngineError, StopFlag, TrainSpec, out_of_memory_message, parse_request
from .tokenizer import ModelTokenizer, check_template, load_model_tokenizer

#: transformers' default max_grad_norm, as the embedded engine.
MAX_GRAD_NORM = 1.0
#: Positions whose logits are computed at once. Each chunk's loss is back-propagated to the hidden states before
#: the next chunk is computed, so this bounds the [positions × vocabulary] float32 tensors (logits, log-softmax,
#: their gradient: about 2 GiB at 1024 × 151,936 × 14 bytes) whatever the row's length; 1024 rows still keep the
#: LM head's matmul efficient.
LOSS_CHUNK = 1024
#: Where a checkpoint's optimizer, RNG and step live beside the adapter files.
RESUME_STATE = "resume_state.pt"
#: Lets the parity test start from an adapter the embedded engine initialised (issue 8, "Verified on the GPU").
INIT_ADAPTER_ENV = "FINETUNE_TORCH_INIT_ADAPTER"
#: `float32` trains in float32 (the parity test with the embedded engine); bf16 otherwise (TRAINING.md: fp16 overflows).
DTYPE_ENV = "FINETUNE_TORCH_DTYPE"
#: `1` lets the engine train on the CPU when there is no GPU: for checking the training loop on a machine without
#: one (test/engine.torchGpu.test.ts), never what the backend offers users (`check` still says unavailable).
CPU_ENV = "FINETUNE_TORCH_ALLOW_CPU"
#: Opt-in torch.compile of the decoder (shapes vary with packing, so it recompiles; off by default).
COMPILE_ENV = "FINETUNE_TORCH_COMPILE"


def main(channel: Channel) -> int:
    spec_file = os.environ.get("FINETUNE_TORCH_SPEC_FILE")
    if spec_file is not None:
        with open(spec_file, encoding="utf-8") as f:
            line = f.read()
    else:
        line = sys.stdin.readline()
    request = parse_request(line)
    if not isinstance(request, TrainSpec):
        raise EngineError("engine_error", "protocol: expected a train message in train mode")
    # The base model's folder: here, in the Hugging Face cache, or downloaded where the backend allows it — once,
    # before torchrun starts its ranks (they then find it in the cache). A model_unavailable error ends the job.
    quiet = "LOCAL_RANK" in os.environ
    folder = model_folder(request.model.id, request.model.path, (lambda *_: None) if quiet else channel.log)
    request = replace(request, model=replace(request.model, path=folder))
    stop = StopFlag()
    signal.signal(signal.SIGTERM, lambda *_: stop.event.set())
    if spec_file is None:
        threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()
    if request.gpus > 1 and "LOCAL_RANK" not in os.environ:
        return launch_torchrun(request, line, stop, channel, os.environ.get(CPU_ENV) == "1")
    rank = int(os.environ.get("RANK", "0"))
    failure: tuple[str, str] | None = None
    trainer: Trainer | None = None
    try:
        trainer = Trainer(request, channel, stop, Fault.from_env())
        trainer.run()
        return 0
    except Cancelled:
        print("engine: training stopped (cancelled)", file=sys.stderr)
        return _cancelled_exit(stop)
    except OUT_OF_MEMORY:
        # The peak is read before anything is freed (it is a running maximum, freeing does not lower it).
        peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
        total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory if torch.cuda.is_available() else None
        h = request.hyperparameters
        failure = ("out_of_memory", out_of_memory_message(peak, total, h.batch_size, h.max_seq_length))
    except (DataError, EngineError) as error:
        failure = (error.code, str(error))
    except Exception:
        if stop.event.is_set():
            # Cancelled while waiting on another rank, which stopped first: its collective failed, nothing to report.
            print(f"engine: rank {rank} stopped (cancelled)", file=sys.stderr)
            return _cancelled_exit(stop)
        raise
    # Out of the except block the exception and its traceback are gone, and with them the frames that held the
    # model's activations: give that memory back before reporting, so that reporting cannot run out of it too.
    trainer = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    code, message = failure
    if rank == 0:
        channel.error(code, message)
    else:
        # Only rank 0 speaks the protocol; the others' failures go to the log (the launcher reports the exit).
        print(f"engine: rank {rank} failed: {code}: {message}", file=sys.stderr)
    return 1


def _watch_stdin(stop: StopFlag) -> None:
    # Anything after the train message is ignored; end of input means "stop".
    for _ in sys.stdin:
        pass
    stop.event.set()


def _rank0(channel: Channel) -> Channel:
    return channel if int(os.environ.get("RANK", "0")) == 0 else Channel(open(os.devnull, "w"))  # noqa: SIM115


class Trainer:
    """One job from its spec to its last checkpoint (see the module comment)."""

    def __init__(self, spec: TrainSpec, channel: Channel, stop: StopFlag, fault: Fault | None = None) -> None:
        self.spec = spec
        self.fault = fault
        #: The step being trained (where an injected fault happens).
        self.step = 0
        #: The decoder's uncompiled and compiled forwards when COMPILE_ENV compiled it.
        self.eager_forward: Callable[..., Any] | None = None
        self.compiled_forward: Callable[..., Any] | None = None
        self.h = spec.hyperparameters
        self.stop = stop
        self.rank = int(os.environ.get("RANK", "0"))
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.channel = _rank0(channel)
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.cuda = torch.cuda.is_available()
        if not self.cuda and os.environ.get(CPU_ENV) != "1":
            raise EngineError("engine_error", "the torch engine needs an NVIDIA GPU and torch.cuda.is_available() is false")
        self.device = torch.device("cuda", self.local_rank) if self.cuda else torch.device("cpu")
        if self.cuda:
            torch.cuda.set_device(self.device)
        if self.world > 1:
            # NCCL between GPUs; gloo where FINETUNE_TORCH_ALLOW_CPU=1 checks the multi-process path on the CPU.
            torch.distributed.init_process_group("nccl" if self.cuda else "gloo")

    def log(self, level: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.channel.log(level, message, data)

    # ---- setup -------------------------------------------------------------------------------------------------

    def run(self) -> None:
        spec, h = self.spec, self.h
        started = time.perf_counter()
        tokenizer = load_model_tokenizer(spec.model.path)
        data = load_dataset(spec.training_file, spec.validation_file, h.eval_ratio, spec.seed, h.max_seq_length, tokenizer, tokenizer.chat, self.log)
        mismatch = check_template(tokenizer, [e.messages for e in data.train[:3]])
        if mismatch is not None:
            self.log("warn", mismatch)
        plan = plan_run(len(data.train), h.batch_size, h.n_epochs, h.warmup_ratio, h.checkpoints)
        resume = self._read_resume_state(plan, data)
        # Seeded before the adapter is made: its A matrices are drawn from torch's generator, so the same job and
        # seed start from the same adapter (and a killed run's restart reproduces the original's curve).
        torch.manual_seed(spec.seed)
        random.seed(spec.seed)
        model, trainable = self._load_model(resume is not None)
        # Fused AdamW on the GPU (one kernel for every parameter); the CPU check uses the default implementation.
        optimizer = torch.optim.AdamW(trainable, lr=h.learning_rate, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, fused=self.cuda)
        start_step = 0
        trained_tokens = 0
        if resume is not None:
            optimizer.load_state_dict(resume["optimizer"])
            start_step = int(resume["step"])
            trained_tokens = int(resume["trained_tokens"])
            torch.set_rng_state(resume["rng"]["torch"])
            if self.cuda and resume["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(resume["rng"]["cuda"])
            random.setstate(resume["rng"]["python"])
        self.channel.send(
            {
                "type": "started",
                "total_steps": plan.total_steps,
                "train_examples": len(data.train),
                "eval_examples": len(data.eval),
                "tokens_per_epoch": data.tokens_per_epoch,
                "trained_tokens_per_epoch": data.trained_tokens_per_epoch,
                "truncated_examples": data.truncated,
                "resumed_from_step": start_step if resume is not None else None,
            }
        )
        budget = self.row_tokens
        orders: dict[int, list[int]] = {}
        final = ""
        for step in range(start_step + 1, plan.total_steps + 1):
            self.stop.check()
            self.step = step
            step_start = time.perf_counter()
            if self.cuda:
                torch.cuda.reset_peak_memory_stats(self.device)
            epoch_index = (step - 1) // plan.steps_per_epoch
            order = orders.setdefault(epoch_index, epoch_order(len(data.train), spec.seed, epoch_index))
            batch = [data.train[i] for i in batch_of(step, plan, order, h.batch_size)]
            rows = pack_batch(batch, budget)
            step_trained = sum(r.trained_tokens for r in rows)
            loss_sum, correct = self._forward_backward(model, rows[self.rank :: self.world], step_trained, trainable)
            if self.world > 1:
                totals = torch.tensor([loss_sum, correct], device=self.device, dtype=torch.float64)
                torch.distributed.all_reduce(totals)
                loss_sum, correct = float(totals[0]), float(totals[1])
            train_loss = loss_sum / step_trained
            if not math.isfinite(train_loss):
                raise EngineError("nan_loss", f"the training loss is {train_loss} at step {step}: lower the learning rate")
            grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM))
            if not math.isfinite(grad_norm):
                raise EngineError("nan_loss", f"the gradient norm is {grad_norm} at step {step}: lower the learning rate")
            lr = learning_rate(step, plan, h.learning_rate, h.lr_scheduler)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step_tokens = sum(len(e.ids) for e in batch)
            trained_tokens += step_tokens
            if self.cuda:
                torch.cuda.synchronize(self.device)
            metrics: dict[str, Any] = {
                "step": step,
                "total_steps": plan.total_steps,
                "epoch": step / plan.steps_per_epoch,
                "train_loss": train_loss,
                "train_mean_token_accuracy": correct / step_trained,
                "learning_rate": lr,
                "grad_norm": grad_norm,
                "tokens_per_second": step_tokens / max(1e-6, time.perf_counter() - step_start),
                "elapsed": time.perf_counter() - started,
            }
            if self.cuda:
                metrics["gpu_memory"] = int(torch.cuda.max_memory_allocated(self.device))
            is_checkpoint = step in plan.checkpoint_steps
            if is_checkpoint and data.eval:
                valid_loss, valid_accuracy = self._evaluate(model, data.eval, budget)
                metrics["valid_loss"] = valid_loss
                metrics["valid_mean_token_accuracy"] = valid_accuracy
            self.channel.send({"type": "metrics", "data": metrics, "trained_tokens": trained_tokens})
            if is_checkpoint:
                final = self._checkpoint(model, optimizer, tokenizer, data, step, trained_tokens, metrics, order)
        self.channel.send({"type": "done", "trained_tokens": trained_tokens, "final_checkpoint": final or _checkpoint_path(spec.output_dir, plan.total_steps)})
        if self.world > 1:
            torch.distributed.destroy_process_group()

    def _load_model(self, resuming: bool) -> tuple[Any, list[torch.nn.Parameter]]:
        from peft import LoraConfig, PeftModel, get_peft_model  # noqa: PLC0415
        from transformers import AutoModelForCausalLM  # noqa: PLC0415

        spec, h = self.spec, self.h
        dtype = torch.float32 if os.environ.get(DTYPE_ENV) == "float32" else torch.bfloat16
        # The flash kernels take half precision only: float32 goes through sdpa with per-example masks.
        implementation = attention.register() if dtype == torch.bfloat16 else "sdpa"
        self.packed_attention = implementation == attention.VARLEN
        try:
            base = AutoModelForCausalLM.from_pretrained(spec.model.path, dtype=dtype, attn_implementation=implementation)
        except (OSError, ValueError) as error:
            raise EngineError("model_unavailable", f"cannot load {spec.model.id} from {spec.model.path}: {error}") from error
        base.to(self.device)
        base.config.use_cache = False
        checkpointing, self.row_tokens, described = self._plan_memory(base)
        if checkpointing:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            base.enable_input_require_grads()
        self.log("info", described)
        if h.training_type == "full":
            for p in base.parameters():
                p.requires_grad_(True)
            model = base
        elif resuming:
            model = PeftModel.from_pretrained(base, self.spec.resume_from, is_trainable=True)
        elif os.environ.get(INIT_ADAPTER_ENV):
            model = PeftModel.from_pretrained(base, os.environ[INIT_ADAPTER_ENV], is_trainable=True)
        else:
            config = LoraConfig(
                r=h.lora_r,
                lora_alpha=h.lora_alpha,
                lora_dropout=h.lora_dropout,
                target_modules=list(h.lora_target_modules),
                task_type="CAUSAL_LM",
            )
            model = get_peft_model(base, config)
        if os.environ.get(COMPILE_ENV) == "1":
            inner = _decoder(model)
            # The eager forward stays at hand for the checkpoints' samples: generation's one-token steps with a
            # growing cache would recompile the graph (minutes) for one short answer.
            self.eager_forward = inner.forward
            self.compiled_forward = torch.compile(inner.forward, dynamic=True)
            inner.forward = self.compiled_forward
        trainable = [p for p in model.parameters() if p.requires_grad]
        return model, trainable

    def _plan_memory(self, base: Any) -> tuple[bool, int, str]:
        """Whether to checkpoint gradients, how many tokens a packed row may hold, and the log line that says why:
        memory.plan_memory over the memory left once the weights are loaded (the GPU's; the host's on the CPU).
        FINETUNE_TORCH_GRADIENT_CHECKPOINTING=0/1 and FINETUNE_TORCH_PACK_TOKENS=N override the plan; with both
        set no estimate is made (and none can refuse the job)."""
        h = self.h
        forced = os.environ.get("FINETUNE_TORCH_GRADIENT_CHECKPOINTING")
        forced_checkpointing = forced == "1" if forced in ("0", "1") else None
        forced_row = int(os.environ.get("FINETUNE_TORCH_PACK_TOKENS", "0") or "0")
        free = torch.cuda.mem_get_info(self.device)[0] if self.cuda else _host_available_bytes()
        if free is None or (forced_checkpointing is not None and forced_row > 0):
            checkpointing = bool(forced_checkpointing)
            row = max(h.max_seq_length, forced_row or memory.ROW_CAP)
            return checkpointing, row, f"packed rows of up to {row} tokens; gradient checkpointing {'on' if checkpointing else 'off'} (set, not planned)"
        parameters = list(base.parameters())
        try:
            plan = memory.plan_memory(
                memory.shape_of(base.config),
                parameters[0].element_size(),
                int(free),
                h.max_seq_length,
                h.lora_r,
                h.lora_target_modules,
                LOSS_CHUNK,
                full_fine_tuning=h.training_type == "full",
                weight_count=sum(p.numel() for p in parameters),
                dense_mask=not self.packed_attention,
            )
        except memory.NotEnoughMemory as error:
            raise EngineError("out_of_memory", str(error)) from error
        checkpointing = plan.checkpointing if forced_checkpointing is None else forced_checkpointing
        row = max(h.max_seq_length, forced_row or plan.row_tokens)
        return checkpointing, row, plan.describe() + ("" if (forced_checkpointing, forced_row) == (None, 0) else f"; overridden: rows of {row}, checkpointing {'on' if checkpointing else 'off'}")

    def _read_resume_state(self, plan: Any, data: Dataset) -> dict[str, Any] | None:
        if self.spec.resume_from is None:
            return None
        path = os.path.join(self.spec.resume_from, RESUME_STATE)
        try:
            state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
        except OSError as error:
            raise EngineError("engine_error", f"cannot resume from {self.spec.resume_from}: {error}") from error
        if state.get("train_examples") != len(data.train) or state.get("total_steps") != plan.total_steps or state.get("seed") != self.spec.seed:
            raise EngineError(
                "engine_error",
                f"cannot resume from {self.spec.resume_from}: it was made for {state.get('train_examples')} training examples, "
                f"{state.get('total_steps')} steps and seed {state.get('seed')}; this job has {len(data.train)}, {plan.total_steps} and {self.spec.seed}",
            )
        return state

    # ---- the step ----------------------------------------------------------------------------------------------

    def _row_loss(self, model: Any, row: PackedRow, scale: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        """row_loss for this job's device and attention, with an injected fault (FAULT_ENV) when this is its step."""
        fault = self.fault
        poison = scale is not None and fault is not None and fault.hits("nan_loss", "step", self.step)

        def after_forward() -> None:
            if fault is not None:
                fault.out_of_memory("step", self.step)

        return row_loss(model, row, self.device, self.packed_attention, scale, poison=poison, after_forward=after_forward)

    def _forward_backward(self, model: Any, rows: list[PackedRow], step_trained: int, trainable: list[torch.nn.Parameter]) -> tuple[float, float]:
        model.train()
        loss_sum = 0.0
        correct = 0.0
        for row in rows:
            self.stop.check()
            # The step's loss is the mean over all its trained tokens (every rank's rows together): each row's sum
            # is divided by the step's total; ranks then sum their gradients rather than averaging them.
            loss, right = self._row_loss(model, row, 1.0 / step_trained)
            loss_sum += float(loss)
            correct += float(right)
        if self.world > 1:
            for p in trainable:
                if p.grad is None:
                    # A rank with no rows this step (fewer rows than ranks) still takes part in every all_reduce.
                    p.grad = torch.zeros_like(p)
                torch.distributed.all_reduce(p.grad)
        return loss_sum, correct

    @torch.no_grad()
    def _evaluate(self, model: Any, examples: list[Example], budget: int) -> tuple[float, float]:
        model.eval()
        rows = pack_batch(examples, budget)
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.float64)
        if self.fault is not None:
            self.fault.out_of_memory("eval", self.step)
        for row in rows[self.rank :: self.world]:
            self.stop.check()
            loss, right = self._row_loss(model, row, None)
            loss_sum += loss.double()
            correct += right.double()
        if self.world > 1:
            torch.distributed.all_reduce(loss_sum)
            torch.distributed.all_reduce(correct)
        tokens = sum(r.trained_tokens for r in rows)
        model.train()
        return float(loss_sum) / tokens, float(correct) / tokens

    # ---- checkpoints -------------------------------------------------------------------------------------------

    def _checkpoint(self, model: Any, optimizer: torch.optim.Optimizer, tokenizer: ModelTokenizer, data: Dataset, step: int, trained_tokens: int, metrics: dict[str, Any], order: list[int]) -> str:
        path = _checkpoint_path(self.spec.output_dir, step)
        if self.rank == 0:
            staging = path + ".partial"
            shutil.rmtree(staging, ignore_errors=True)
            os.makedirs(staging)
            model.save_pretrained(staging, safe_serialization=True)
            if self.h.training_type == "full":
                tokenizer_file = os.path.join(self.spec.model.path, "tokenizer.json")
                if os.path.exists(tokenizer_file):
                    shutil.copy(tokenizer_file, staging)
            torch.save(
                {
                    "format": "finetune-studio-torch",
                    "version": 1,
                    "base_model": self.spec.model.id,
                    "step": step,
                    "total_steps": metrics["total_steps"],
                    "seed": self.spec.seed,
                    "train_examples": len(data.train),
                    "trained_tokens": trained_tokens,
                    "data_order": order,
                    "optimizer": optimizer.state_dict(),
                    "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(self.device) if self.cuda else None, "python": random.getstate()},
                    "hyperparameters": self.h.__dict__,
                },
                os.path.join(staging, RESUME_STATE),
            )
            with open(os.path.join(staging, "trainer_state.json"), "w", encoding="utf-8") as f:
                json.dump({k: v for k, v in metrics.items()}, f)
            shutil.rmtree(path, ignore_errors=True)
            os.replace(staging, path)
            sample = self._sample(model, tokenizer, data)
            self.channel.send(
                {
                    "type": "checkpoint",
                    "step": step,
                    "path": path,
                    "train_loss": metrics["train_loss"],
                    "train_mean_token_accuracy": metrics["train_mean_token_accuracy"],
                    "valid_loss": metrics.get("valid_loss"),
                    "valid_mean_token_accuracy": metrics.get("valid_mean_token_accuracy"),
                    "sample": sample,
                }
            )
        if self.world > 1:
            torch.distributed.barrier()
        return path

    @torch.no_grad()
    def _sample(self, model: Any, tokenizer: ModelTokenizer, data: Dataset) -> dict[str, Any] | None:
        """This checkpoint's greedy answer to the run's sample conversation (at most about twice the reference)."""
        if data.sample is None:
            return None
        if self.fault is not None:
            self.fault.out_of_memory("sample", self.step)
        messages = [Message(m["role"], m["content"]) for m in data.sample.messages]
        prompt = prompt_ids(tokenizer, tokenizer.chat, messages)
        limit = 2 * (len(tokenizer.encode(data.sample.reference)) + 1) + 8
        stops = {tokenizer.chat.im_end, *([tokenizer.chat.end_of_text] if tokenizer.chat.end_of_text is not None else [])}
        model.eval()
        was_caching = model.config.use_cache
        model.config.use_cache = True
        try:
            ids = torch.tensor([prompt], dtype=torch.long, device=self.device)
            if self.eager_forward is not None:
                _decoder(model).forward = self.eager_forward
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=limit, do_sample=False, eos_token_id=sorted(stops), pad_token_id=tokenizer.chat.im_end)
            answer = [t for t in out[0, len(prompt) :].tolist() if t not in stops]
        finally:
            if self.compiled_forward is not None:
                _decoder(model).forward = self.compiled_forward
            model.config.use_cache = was_caching
            model.train()
        return {"messages": data.sample.messages, "reference": data.sample.reference, "answer": tokenizer.decode(answer)}


def row_loss(
    model: Any,
    row: PackedRow,
    device: torch.device,
    packed_attention: bool,
    scale: float | None,
    *,
    poison: bool = False,
    after_forward: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy over a packed row's trained positions, and the count of right argmax predictions. With
    `scale` (training), also back-propagates `scale` × that sum: chunk by chunk (LOSS_CHUNK positions) through the
    LM head into the hidden states, then once through the decoder, so that only one chunk's logits exist at a time.
    Module-level so that bench/torch_bench.py measures this very code. `poison` makes the loss NaN (FAULT_ENV)."""
    ids = torch.tensor([row.input_ids], dtype=torch.long, device=device)
    labels = torch.tensor(row.labels, dtype=torch.long, device=device)
    positions = torch.tensor([row.position_ids], dtype=torch.long, device=device)
    extra = attention.packed_kwargs(row.cu_seqlens, row.max_seqlen, device) if packed_attention else {}
    hidden = _decoder(model)(input_ids=ids, position_ids=positions, use_cache=False, **extra).last_hidden_state[0]
    if after_forward is not None:
        after_forward()
    factor = float("nan") if poison else 1.0
    # Position i predicts labels[i + 1]; only positions with a trained next token get logits.
    targets = labels[1:]
    where = (targets != IGNORE).nonzero(as_tuple=True)[0]
    head = _lm_head(model)
    training = scale is not None and torch.is_grad_enabled() and hidden.requires_grad
    # The LM head's input, cut off from the decoder's graph: each chunk's backward stops here and accumulates into
    # its .grad, which then goes through the decoder in one backward.
    source = hidden.detach().requires_grad_(True) if training else hidden
    loss = torch.zeros((), device=device, dtype=torch.float32)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for start in range(0, where.numel(), LOSS_CHUNK):
        at = where[start : start + LOSS_CHUNK]
        logits = head(source[at]).float()
        goal = targets[at]
        chunk = torch.nn.functional.cross_entropy(logits, goal, reduction="sum") * factor
        if training and scale is not None:
            (chunk * scale).backward()
        loss = loss + chunk.detach()
        correct = correct + (logits.detach().argmax(-1) == goal).sum()
        del logits, chunk
    if training and source.grad is not None:
        hidden.backward(source.grad)
    return loss, correct


def _cancelled_exit(stop: StopFlag) -> int:
    """The exit code of a cancelled job: 143 (as for SIGTERM) for the engine itself; 0 for a torchrun worker, so
    that torchrun ends quietly instead of reporting a failed worker (the launcher tells the backend 143)."""
    return 0 if "LOCAL_RANK" in os.environ or not stop.event.is_set() else 143


def _host_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux): the CPU run's counterpart of the GPU's free memory."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _checkpoint_path(output_dir: str, step: int) -> str:
    return os.path.join(output_dir, "checkpoints", f"step-{step}")


def _causal_lm(model: Any) -> Any:
    """The transformers CausalLM inside a peft model (or the model itself for full fine-tuning)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _decoder(model: Any) -> Any:
    """The decoder stack (Qwen2Model): hidden states without the LM head."""
    return _causal_lm(model).model


def _lm_head(model: Any) -> Any:
    return _causal_lm(model).lm_head
