"""The training data of a job, the shape of its run, and packed micro-batches — the torch engine's twin of
``backend/engines/embedded/data.ts`` and ``schedule.ts``, kept identical in what it computes (the same tokens,
labels, eval split, data order, steps, learning rates and checkpoint steps for the same spec and seed), so that
the two engines train on exactly the same batches and their losses can be compared.

Pure Python: no torch here, so that CI tests it on machines without torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

#: transformers' ignore index: a label the loss skips.
IGNORE = -100

#: What Qwen2.5's chat template inserts when a conversation has no system message first.
QWEN_DEFAULT_SYSTEM_PROMPT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

#: At most this many skipped lines are logged one by one; the rest are counted.
SKIP_LOG_LIMIT = 20

ROLES = ("system", "user", "assistant")


class DataError(Exception):
    """The dataset cannot be trained on; ``code`` is the job error code (``invalid_dataset``)."""

    def __init__(self, message: str, code: str = "invalid_dataset") -> None:
        super().__init__(message)
        self.code = code


class Tokenizer(Protocol):
    """What rendering needs of a tokenizer: ``bpe.BpeTokenizer`` and the transformers adapter both have it."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


@dataclass(frozen=True)
class ChatTokenIds:
    """The special tokens that the chat template and generation need, with this tokenizer's ids."""

    im_start: int
    im_end: int
    end_of_text: int | None


def chat_token_ids(special: dict[str, int]) -> ChatTokenIds:
    """The chat token ids from a tokenizer's special tokens (never assumed per model)."""
    if "<|im_start|>" not in special or "<|im_end|>" not in special:
        raise DataError("the tokenizer has no <|im_start|>/<|im_end|> special tokens: not a Qwen2.5 chat tokenizer", "model_unavailable")
    return ChatTokenIds(special["<|im_start|>"], special["<|im_end|>"], special.get("<|endoftext|>"))


@dataclass
class Message:
    role: str
    content: str
    #: 0 makes an assistant turn untrained (OpenAI's `weight`); None is 1.
    weight: float | None = None


@dataclass
class Rendered:
    """A rendered conversation: token ids, and for each id whether it is trained on."""

    ids: list[int] = field(default_factory=list)
    trained: list[bool] = field(default_factory=list)

    def push(self, ids: Sequence[int], trained: bool) -> None:
        self.ids.extend(ids)
        self.trained.extend([trained] * len(ids))


def render_conversation(tokenizer: Tokenizer, special: ChatTokenIds, messages: Sequence[Message], generation_prompt: bool = False) -> Rendered:
    """Renders a conversation with the Qwen2.5 chat template, segment by segment (ARCHITECTURE.md, "The training
    rules"): system and user messages masked whole; for an assistant message, ``<|im_start|>assistant\\n`` masked
    and its content tokenized alone, then ``<|im_end|>`` and ``\\n``, trained unless its weight is 0. The default
    system message comes first when the conversation has none."""
    out = Rendered()
    newline = tokenizer.encode("\n")
    if not messages or messages[0].role != "system":
        out.push([special.im_start, *tokenizer.encode(f"system\n{QWEN_DEFAULT_SYSTEM_PROMPT}"), special.im_end, *newline], False)
    for m in messages:
        if m.role == "assistant":
            out.push([special.im_start, *tokenizer.encode("assistant\n")], False)
            out.push([*tokenizer.encode(m.content), special.im_end, *newline], m.weight != 0)
        else:
            out.push([special.im_start, *tokenizer.encode(f"{m.role}\n{m.content}"), special.im_end, *newline], False)
    if generation_prompt:
        out.push([special.im_start, *tokenizer.encode("assistant\n")], False)
    return out


def prompt_ids(tokenizer: Tokenizer, special: ChatTokenIds, messages: Sequence[Message]) -> list[int]:
    """The ids of a chat prompt: the conversation and the generation prompt ``<|im_start|>assistant\\n``."""
    return render_conversation(tokenizer, special, messages, True).ids


@dataclass
class Example:
    """One training or evaluation example."""

    line: int
    messages: list[Message]
    ids: list[int]
    #: The id where trained, IGNORE elsewhere; position i predicts labels[i + 1] (transformers' convention).
    labels: list[int]
    #: Positions that carry loss: labels other than IGNORE, the first position excluded (nothing predicts it).
    trained_tokens: int
    truncated: bool


def build_example(tokenizer: Tokenizer, special: ChatTokenIds, messages: list[Message], max_seq_length: int, line: int = 0) -> Example:
    """An example from a conversation, truncated to ``max_seq_length`` tokens."""
    rendered = render_conversation(tokenizer, special, messages)
    length = min(len(rendered.ids), max_seq_length)
    ids = rendered.ids[:length]
    labels = [id_ if rendered.trained[i] else IGNORE for i, id_ in enumerate(ids)]
    trained = sum(1 for i in range(1, length) if rendered.trained[i])
    return Example(line, messages, ids, labels, trained, len(rendered.ids) > max_seq_length)


def trained_text(tokenizer: Tokenizer, example: Example) -> str:
    """The decoded trained tokens of an example, in order (what the label check compares)."""
    return tokenizer.decode([label for label in example.labels if label != IGNORE])


def expected_trained_text(example: Example) -> str:
    """What the trained tokens of an untruncated example must decode to: each trained assistant turn's content
    followed by ``<|im_end|>\\n``."""
    return "".join(f"{m.content}<|im_end|>\n" for m in example.messages if m.role == "assistant" and m.weight != 0)


def check_labels(tokenizer: Tokenizer, example: Example) -> None:
    """TRAINING.md, "Masking": an example keeps at least one trained token, and (untruncated) its trained tokens
    decode to exactly its assistant turns. Raises DataError naming the line otherwise."""
    if example.trained_tokens == 0:
        raise DataError(f"line {example.line}: no token to train on")
    if example.truncated:
        return
    got = trained_text(tokenizer, example)
    want = expected_trained_text(example)
    if got != want:
        raise DataError(f"line {example.line}: the trained tokens decode to {got[:80]!r}, not to the assistant turns {want[:80]!r}")


def parse_conversation(value: Any) -> list[Message] | str:
    """The conversation of a parsed line, or why it is not one (the same reasons as the embedded engine)."""
    if not isinstance(value, dict):
        return "not a JSON object"
    messages = value.get("messages")
    if not isinstance(messages, list) or not messages:
        return 'no "messages" array'
    out: list[Message] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            return f"messages[{i}] is not an object"
        role, content, weight = m.get("role"), m.get("content"), m.get("weight")
        if not isinstance(role, str) or role not in ROLES:
            return f"messages[{i}].role is not system, user or assistant"
        if not isinstance(content, str):
            return f"messages[{i}].content is not a string"
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))):
            return f"messages[{i}].weight is not a number"
        out.append(Message(role, content, weight))
    if not any(m.role == "assistant" for m in out):
        return "no assistant message"
    return out


Log = Callable[[str, str, "dict[str, Any] | None"], None]


def read_conversations(path: str, log: Log) -> list[tuple[int, list[Message]]]:
    """The conversations of a ``.jsonl`` file with their 1-based lines, skipping (with a log line) the others."""
    out: list[tuple[int, list[Message]]] = []
    skipped = 0
    try:
        with open(path, encoding="utf-8") as f:
            for line, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    parsed = parse_conversation(json.loads(text))
                except json.JSONDecodeError as error:
                    parsed = f"not valid JSON ({error.msg} at column {error.colno})"
                if isinstance(parsed, list):
                    out.append((line, parsed))
                    continue
                skipped += 1
                if skipped <= SKIP_LOG_LIMIT:
                    log("warn", f"{path}:{line}: skipped, {parsed}", None)
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read {path}: {error}") from error
    if skipped > SKIP_LOG_LIMIT:
        log("warn", f"{path}: {skipped} lines skipped in all (not conversations)", {"skipped": skipped})
    return out


@dataclass
class Sample:
    """The conversation every checkpoint answers: the messages before the last assistant turn, and that turn."""

    messages: list[dict[str, str]]
    reference: str


def sample_of(messages: Sequence[Message]) -> Sample | None:
    last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    if last < 0:
        return None
    return Sample([{"role": m.role, "content": m.content} for m in messages[:last]], messages[last].content)


@dataclass
class Dataset:
    train: list[Example]
    eval: list[Example]
    truncated: int
    tokens_per_epoch: int
    trained_tokens_per_epoch: int
    sample: Sample | None


def _examples_of(path: str, tokenizer: Tokenizer, special: ChatTokenIds, max_seq_length: int, log: Log) -> tuple[list[Example], int]:
    examples: list[Example] = []
    truncated = untrained = 0
    for line, messages in read_conversations(path, log):
        example = build_example(tokenizer, special, messages, max_seq_length, line)
        if example.trained_tokens == 0:
            why = f"after truncation to max_seq_length {max_seq_length}" if example.truncated else "every assistant message has weight 0"
            untrained += 1
            if untrained <= SKIP_LOG_LIMIT:
                log("warn", f"{path}:{line}: skipped, no token to train on ({why})", None)
            continue
        check_labels(tokenizer, example)
        if example.truncated:
            truncated += 1
        examples.append(example)
    if untrained > SKIP_LOG_LIMIT:
        log("warn", f"{path}: {untrained} examples skipped in all (no token to train on)", {"skipped": untrained})
    return examples, truncated


def load_dataset(
    training_file: str,
    validation_file: str | None,
    eval_ratio: float,
    seed: int,
    max_seq_length: int,
    tokenizer: Tokenizer,
    special: ChatTokenIds,
    log: Log,
) -> Dataset:
    """Reads and renders the training (and validation) file; without a validation file, ``eval_ratio`` of the
    training examples (chosen with the seed, as the embedded engine chooses them) are held out."""
    train, truncated = _examples_of(training_file, tokenizer, special, max_seq_length, log)
    if not train:
        raise DataError(f"{training_file} has no example with an assistant token to train on")
    held_out: list[Example] = []
    if validation_file is not None:
        held_out, more = _examples_of(validation_file, tokenizer, special, max_seq_length, log)
        truncated += more
    elif eval_ratio > 0 and len(train) >= 2:
        count = min(len(train) - 1, max(1, js_round(len(train) * eval_ratio)))
        held = set(permutation(len(train), seed)[:count])
        held_out = [e for i, e in enumerate(train) if i in held]
        train = [e for i, e in enumerate(train) if i not in held]
    if truncated:
        log("warn", f"{truncated} example(s) longer than max_seq_length {max_seq_length} tokens were truncated", {"truncated": truncated})
    source = held_out[0] if held_out else train[0]
    return Dataset(
        train,
        held_out,
        truncated,
        sum(len(e.ids) for e in train),
        sum(e.trained_tokens for e in train),
        sample_of(source.messages),
    )


# ---- the shape of a run (schedule.ts) ------------------------------------------------------------------------

_MASK = 0xFFFFFFFF


def _imul(a: int, b: int) -> int:
    """JavaScript's Math.imul, as an unsigned 32-bit result (the low 32 bits of the product)."""
    return ((a & _MASK) * (b & _MASK)) & _MASK


def js_round(x: float) -> int:
    """JavaScript's Math.round (halves up), which Python's banker's round is not."""
    return math.floor(x + 0.5)


def seeded_random(seed: int) -> Callable[[], float]:
    """mulberry32, bit for bit as the embedded engine's ``seededRandom``."""
    state = seed & _MASK

    def next_value() -> float:
        nonlocal state
        state = (state + 0x6D2B79F5) & _MASK
        t = state
        t = _imul(t ^ (t >> 15), t | 1)
        t ^= (t + _imul(t ^ (t >> 7), t | 61)) & _MASK
        return ((t ^ (t >> 14)) & _MASK) / 4294967296

    return next_value


def permutation(n: int, seed: int) -> list[int]:
    """A seeded permutation of 0…n-1 (Fisher–Yates), as the embedded engine's."""
    random = seeded_random(seed)
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = math.floor(random() * (i + 1))
        order[i], order[j] = order[j], order[i]
    return order


def epoch_order(examples: int, seed: int, epoch: int) -> list[int]:
    """The order of the training examples in epoch ``epoch`` (0-based)."""
    return permutation(examples, (_imul(seed, 0x9E3779B1) + _imul(epoch + 1, 0x85EBCA6B)) & _MASK)


@dataclass(frozen=True)
class RunPlan:
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    #: Steps (1-based) after which a checkpoint is written, ascending; the last is total_steps.
    checkpoint_steps: tuple[int, ...]


def plan_run(train_examples: int, batch_size: int, epochs: int, warmup_ratio: float, checkpoints: int) -> RunPlan:
    steps_per_epoch = math.ceil(train_examples / batch_size)
    total = steps_per_epoch * epochs
    warmup = min(total, math.ceil(total * warmup_ratio))
    wanted = max(1, min(checkpoints, total))
    steps = sorted({max(1, js_round(total * k / wanted)) for k in range(1, wanted + 1)})
    return RunPlan(steps_per_epoch, total, warmup, tuple(steps))


def learning_rate(step: int, plan: RunPlan, peak: float, scheduler: str) -> float:
    """Linear warm-up to the peak at the last warm-up step, then cosine or linear decay, or constant."""
    i = step - 1
    if i < plan.warmup_steps:
        return peak * (i + 1) / plan.warmup_steps
    if scheduler == "constant":
        return peak
    progress = (i - plan.warmup_steps) / max(1, plan.total_steps - plan.warmup_steps)
    if scheduler == "linear":
        return peak * (1 - progress)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def batch_of(step: int, plan: RunPlan, order: Sequence[int], batch_size: int) -> list[int]:
    """The examples (indices) of step ``step`` (1-based): a consecutive slice of its epoch's order."""
    within = (step - 1) % plan.steps_per_epoch
    return list(order[within * batch_size : (within + 1) * batch_size])


# ---- packing -------------------------------------------------------------------------------------------------


@dataclass
class PackedRow:
    """Several examples in one row, attention never crossing between them: ``position_ids`` restart at 0 per
    example and ``cu_seqlens`` are the cumulative boundaries that variable-length attention takes. The first
    label of each example is IGNORE (nothing before it in its own sequence predicts it)."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    cu_seqlens: list[int]
    max_seqlen: int
    #: Indices (into the batch given to pack_batch) of the examples in this row, in order.
    examples: list[int]

    @property
    def trained_tokens(self) -> int:
        """Positions whose next token carries loss (the labels shifted by one, as the loss reads them)."""
        return sum(1 for label in self.labels[1:] if label != IGNORE)


def pack_batch(examples: Sequence[Example], budget: int) -> list[PackedRow]:
    """Packs one optimizer step's examples into rows of at most ``budget`` tokens each (first fit, longest
    first, so that rows come out full and few); an example longer than the budget gets a row of its own. The
    loss of the step is then normalised over the trained tokens of all rows together."""
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i].ids))
    rows: list[list[int]] = []
    sizes: list[int] = []
    for i in order:
        n = len(examples[i].ids)
        for r, size in enumerate(sizes):
            if size + n <= budget:
                rows[r].append(i)
                sizes[r] += n
                break
        else:
            rows.append([i])
            sizes.append(n)
    packed: list[PackedRow] = []
    for members in rows:
        members.sort()
        row = PackedRow([], [], [], [0], 0, members)
        for i in members:
            e = examples[i]
            row.input_ids.extend(e.ids)
            row.labels.append(IGNORE)
            row.labels.extend(e.labels[1:])
            row.position_ids.extend(range(len(e.ids)))
            row.cu_seqlens.append(row.cu_seqlens[-1] + len(e.ids))
            row.max_seqlen = max(row.max_seqlen, len(e.ids))
        packed.append(row)
    return packed
