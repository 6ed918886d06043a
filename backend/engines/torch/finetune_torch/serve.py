"""``serve`` mode: the long-lived chat process. It keeps each base model it was asked for loaded once, loads
LoRA adapters onto it on demand and switches between them without reloading the base (peft's
``load_adapter``/``set_adapter``; the least recently used ones beyond ``MAX_ADAPTERS`` are deleted), answers the
base model itself with the adapters disabled, and streams each answer token by token. A ``chat_cancel`` (the
client went away) stops a generation between two tokens. Requests run one at a time on a worker thread; the main
thread keeps reading stdin so that cancels arrive while a generation runs.

Status: written without a GPU (none was lent to the session that wrote it); test/gpu/ holds the checks.
"""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch

#: torch >= 2.5 names it at the top level; older releases only under torch.cuda.
OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)

from .data import DataError, Message, prompt_ids
from .hub import model_folder
from .protocol import PROTOCOL_VERSION, ChatCancel, ChatRequest, Channel, EngineError, GenerationParams, ModelRef, parse_request, request_id
from .tokenizer import ModelTokenizer, load_model_tokenizer

#: Adapters kept loaded per base model.
MAX_ADAPTERS = 8


@dataclass
class Loaded:
    """A base model in memory, with its tokenizer and the adapters loaded onto it (most recent last)."""

    model: Any
    tokenizer: ModelTokenizer
    adapters: OrderedDict[str, str] = field(default_factory=OrderedDict)


class ChatServer:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.models: dict[str, Loaded] = {}
        self.full_models: OrderedDict[str, Loaded] = OrderedDict()
        self.work: queue.Queue[ChatRequest | None] = queue.Queue()
        self.cancelled: set[str] = set()
        self.lock = threading.Lock()

    # ---- requests ----------------------------------------------------------------------------------------------

    def handle(self, request: ChatRequest | ChatCancel) -> None:
        if isinstance(request, ChatCancel):
            with self.lock:
                self.cancelled.add(request.id)
            return
        self.work.put(request)

    def worker(self) -> None:
        while True:
            request = self.work.get()
            if request is None:
                return
            try:
                self._answer(request)
            except OUT_OF_MEMORY:
                peak = torch.cuda.max_memory_allocated() / 1024**3 if torch.cuda.is_available() else 0
                self.channel.chat_error(request.id, "out_of_memory", f"the GPU ran out of memory (peak {peak:.1f} GiB): ask for fewer tokens or a shorter conversation")
            except (EngineError, DataError) as error:
                # A model folder without a usable tokenizer is a DataError(model_unavailable): said as such.
                code = error.code if error.code in ("model_unavailable", "out_of_memory") else "engine_error"
                self.channel.chat_error(request.id, code, str(error))
            except Exception as error:  # noqa: BLE001 - one failed chat must not end the process
                print(f"engine: chat {request.id} failed: {error!r}", file=sys.stderr)
                self.channel.chat_error(request.id, "engine_error", f"the torch engine failed: {error}")
            finally:
                with self.lock:
                    self.cancelled.discard(request.id)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()

    def _is_cancelled(self, id_: str) -> bool:
        with self.lock:
            return id_ in self.cancelled

    # ---- models ------------------------------------------------------------------------------------------------

    def _base(self, ref: ModelRef) -> Loaded:
        """The base model loaded once, from the folder hub.py finds for it (downloaded first when the backend allows
        it and it is nowhere on the machine)."""
        key = f"{ref.id}\n{ref.path}"
        loaded = self.models.get(key)
        if loaded is None:
            path = model_folder(ref.id, ref.path, self.channel.log)
            loaded = Loaded(self._load(path), load_model_tokenizer(path))
            self.models[key] = loaded
        return loaded

    def _load(self, path: str) -> Any:
        from transformers import AutoModelForCausalLM  # noqa: PLC0415

        try:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, attn_implementation="sdpa")
        except (OSError, ValueError) as error:
            raise EngineError("model_unavailable", f"cannot load the model at {path}: {error}") from error
        model.to(self.device)
        model.eval()
        return model

    def _target(self, request: ChatRequest) -> tuple[Loaded, str | None]:
        """The loaded model to answer with, and the adapter to activate (None: the base, adapters disabled)."""
        base = self._base(request.model)
        if request.adapter is None:
            return base, None
        adapter = request.adapter
        if not os.path.exists(os.path.join(adapter, "adapter_config.json")):
            if os.path.exists(os.path.join(adapter, "config.json")):
                # A full fine-tuning checkpoint: a model of its own (tiny models only), with the base's tokenizer.
                full = self.full_models.get(adapter)
                if full is None:
                    full = Loaded(self._load(adapter), base.tokenizer)
                    self.full_models[adapter] = full
                    while len(self.full_models) > 2:
                        self.full_models.popitem(last=False)
                self.full_models.move_to_end(adapter)
                return full, None
            raise EngineError("model_unavailable", f"{adapter} holds neither a LoRA adapter nor a model")
        name = "a" + hashlib.sha256(adapter.encode()).hexdigest()[:16]
        if name not in base.adapters:
            from peft import PeftModel  # noqa: PLC0415

            try:
                if not isinstance(base.model, PeftModel):
                    base.model = PeftModel.from_pretrained(base.model, adapter, adapter_name=name)
                else:
                    base.model.load_adapter(adapter, adapter_name=name)
            except (OSError, ValueError, KeyError) as error:
                raise EngineError("model_unavailable", f"cannot load the adapter at {adapter}: {error}") from error
            base.model.eval()
            base.adapters[name] = adapter
            while len(base.adapters) > MAX_ADAPTERS:
                old, _ = base.adapters.popitem(last=False)
                base.model.delete_adapter(old)
        base.adapters.move_to_end(name)
        return base, name

    # ---- generation --------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _answer(self, request: ChatRequest) -> None:
        target, adapter = self._target(request)
        tokenizer = target.tokenizer
        messages = [Message(m["role"], m["content"]) for m in request.messages]
        prompt = prompt_ids(tokenizer, tokenizer.chat, messages)
        model = target.model
        from peft import PeftModel  # noqa: PLC0415

        if isinstance(model, PeftModel):
            if adapter is None:
                with model.disable_adapter():
                    finish, generated = self._generate(model, tokenizer, prompt, request)
            else:
                model.set_adapter(adapter)
                finish, generated = self._generate(model, tokenizer, prompt, request)
        else:
            finish, generated = self._generate(model, tokenizer, prompt, request)
        if finish == "cancelled":
            self.channel.chat_error(request.id, "cancelled", "the generation was stopped")
            return
        self.channel.send({"type": "chat_done", "id": request.id, "finish_reason": finish, "prompt_tokens": len(prompt), "completion_tokens": generated})

    def _generate(self, model: Any, tokenizer: ModelTokenizer, prompt: list[int], request: ChatRequest) -> tuple[str, int]:
        """Streams tokens until an end token, a stop string, max_tokens, or a cancel; the finish reason and the
        number of tokens generated."""
        from transformers import DynamicCache  # noqa: PLC0415

        p: GenerationParams = request.params
        stops = {tokenizer.chat.im_end, *([tokenizer.chat.end_of_text] if tokenizer.chat.end_of_text is not None else [])}
        generator = torch.Generator(device=self.device).manual_seed(p.seed)
        cache = DynamicCache()
        seen = torch.zeros(model.config.vocab_size, dtype=torch.bool, device=self.device)
        seen[torch.tensor(prompt, device=self.device)] = True
        generated: list[int] = []
        sent = ""
        inputs = torch.tensor([prompt], dtype=torch.long, device=self.device)
        for _ in range(p.max_tokens):
            if self._is_cancelled(request.id):
                return "cancelled", len(generated)
            out = model(input_ids=inputs, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits = out.logits[0, -1].float()
            # The embedding may be padded past the tokenizer's last id: those rows are never sampled.
            logits[tokenizer.size :] = float("-inf")
            token = sample_next(logits, seen, p, generator)
            if token in stops:
                return "stop", len(generated)
            generated.append(token)
            seen[token] = True
            text = tokenizer.decode(generated)
            hit = next((text.index(s) for s in p.stop if s and s in text), None)
            if hit is not None:
                if hit > len(sent):
                    self.channel.send({"type": "token", "id": request.id, "text": text[len(sent) : hit]})
                return "stop", len(generated)
            # Hold back an incomplete UTF-8 character (decoded as U+FFFD) and what could begin a stop string.
            safe = len(text.rstrip("\ufffd"))
            for s in p.stop:
                for k in range(min(len(s) - 1, safe), 0, -1):
                    if text[safe - k : safe] == s[:k]:
                        safe -= k
                        break
            if safe > len(sent):
                self.channel.send({"type": "token", "id": request.id, "text": text[len(sent) : safe]})
                sent = text[:safe]
            inputs = torch.tensor([[token]], dtype=torch.long, device=self.device)
        text = tokenizer.decode(generated)
        if len(text) > len(sent):
            self.channel.send({"type": "token", "id": request.id, "text": text[len(sent) :]})
        return "length", len(generated)


def sample_next(logits: torch.Tensor, seen: torch.Tensor, p: GenerationParams, generator: torch.Generator) -> int:
    """The next token: repetition penalty on every token seen (divide positive logits, multiply negative ones),
    then greedy at temperature 0, else temperature, top-k and top-p (nucleus) sampling with the request's seed."""
    if p.repetition_penalty != 1.0:
        penalised = torch.where(logits > 0, logits / p.repetition_penalty, logits * p.repetition_penalty)
        logits = torch.where(seen, penalised, logits)
    if p.temperature <= 0:
        return int(logits.argmax())
    logits = logits / p.temperature
    if 0 < p.top_k < logits.numel():
        kth = torch.topk(logits, p.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if 0 < p.top_p < 1:
        sorted_probs, order = torch.sort(probs, descending=True)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        drop = cumulative - sorted_probs >= p.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=generator))


def main(channel: Channel) -> int:
    server = ChatServer(channel)
    worker = threading.Thread(target=server.worker, daemon=True)
    worker.start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
    channel.send({"type": "ready", "protocol": PROTOCOL_VERSION})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = parse_request(line)
            if not isinstance(request, (ChatRequest, ChatCancel)):
                raise EngineError("engine_error", "protocol: a train message in serve mode")
            server.handle(request)
        except EngineError as error:
            id_ = request_id(line)
            if id_ is not None:
                channel.chat_error(id_, "engine_error", str(error))
            else:
                channel.log("error", str(error))
    server.work.put(None)
    worker.join(timeout=30)
    return 0
