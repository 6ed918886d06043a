"""The model's tokenizer for the torch engine: transformers' (fast) tokenizer of the model folder when
transformers is installed, else the pure-Python reader of its tokenizer.json (bpe.py) — both give the same ids
for the Qwen2.5 files. Rendering is data.py's, segment by segment; ``check_template`` holds it to the chat
template the model ships (tokenizer_config.json), so that training renders exactly what chat will send.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from . import bpe
from .data import ChatTokenIds, DataError, Message, chat_token_ids, render_conversation


class ModelTokenizer:
    """encode/decode without special-token additions, and the chat token ids."""

    def __init__(self, encode: Any, decode: Any, special: dict[str, int], hf: Any | None, size: int) -> None:
        self._encode = encode
        #: Ids the tokenizer has (the embedding matrix may be padded beyond them; those rows are never sampled).
        self.size = size
        self._decode = decode
        self.special_ids = special
        self.chat: ChatTokenIds = chat_token_ids(special)
        #: transformers' tokenizer when there is one (its chat template, for the check).
        self.hf = hf

    def encode(self, text: str) -> list[int]:
        result: list[int] = self._encode(text)
        return result

    def decode(self, ids: Sequence[int]) -> str:
        result: str = self._decode(list(ids))
        return result


def load_model_tokenizer(folder: str) -> ModelTokenizer:
    """The tokenizer of a model folder. Raises DataError(model_unavailable) when it has none usable."""
    path = os.path.join(folder, "tokenizer.json")
    try:
        from transformers import AutoTokenizer  # noqa: PLC0415 - optional: the pure reader stands in without it
    except ImportError:
        AutoTokenizer = None  # noqa: N806
    if AutoTokenizer is not None and os.path.exists(os.path.join(folder, "tokenizer_config.json")):
        try:
            hf = AutoTokenizer.from_pretrained(folder)
        except Exception as error:  # noqa: BLE001 - any failure here is the model's problem, said plainly
            raise DataError(f"cannot load the tokenizer of {folder}: {error}", "model_unavailable") from error
        special = {t: hf.convert_tokens_to_ids(t) for t in ("<|im_start|>", "<|im_end|>", "<|endoftext|>")}
        special = {t: i for t, i in special.items() if isinstance(i, int) and i != hf.unk_token_id}
        return ModelTokenizer(
            lambda text: hf.encode(text, add_special_tokens=False),
            lambda ids: hf.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False),
            special,
            hf,
            len(hf),
        )
    try:
        tok = bpe.load_tokenizer_file(path)
    except (OSError, bpe.TokenizerError) as error:
        raise DataError(f"cannot load {path}: {error}", "model_unavailable") from error
    return ModelTokenizer(tok.encode, tok.decode, tok.special, None, tok.vocab_size)


def check_template(tokenizer: ModelTokenizer, conversations: Sequence[Sequence[Message]]) -> str | None:
    """Compares our rendering with the model's own chat template on a few conversations; None when they agree
    (or the model ships no template), else what differs, for a warning in the job's log."""
    hf = tokenizer.hf
    if hf is None or not getattr(hf, "chat_template", None):
        return None
    for messages in conversations:
        ours = render_conversation(tokenizer, tokenizer.chat, messages).ids
        rendered = hf.apply_chat_template([{"role": m.role, "content": m.content} for m in messages], tokenize=True, add_generation_prompt=False)
        # transformers 5 answers a BatchEncoding (input_ids, attention_mask), earlier releases a plain list.
        theirs = list(rendered["input_ids"] if hasattr(rendered, "keys") else rendered)
        if ours != theirs:
            at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            return (
                f"the model's chat template renders a conversation differently from the Qwen2.5 template used for training "
                f"(first difference at token {at}: {tokenizer.decode(theirs[max(0, at - 5) : at + 5])!r} vs "
                f"{tokenizer.decode(ours[max(0, at - 5) : at + 5])!r})"
            )
    return None
