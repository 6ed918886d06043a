"""A byte-level BPE tokenizer read from a Hugging Face ``tokenizer.json``, in pure Python.

The torch engine tokenizes with the model's own tokenizer through transformers when it is installed. This
module is what it uses without transformers (and what the tests use on machines without it): it reproduces the
files that Qwen2.5 and the built-in tiny models ship exactly — NFC normalisation, Qwen2's pre-tokenizer
pattern, byte-level pieces, merges by rank, added tokens split out first — and refuses any other kind of file
rather than tokenize it differently. ``common/tokenizer/bpe.ts`` is its TypeScript twin; a test holds them to
the same ids.
"""

from __future__ import annotations

import gzip
import json
import unicodedata
from typing import Any, Iterable

#: Qwen2's pre-tokenizer pattern, as its tokenizer.json writes it; the scanner below implements it.
QWEN2_PATTERN = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)

# Character classes of the scanner: NEWLINE is \r or \n, SPACE any other Unicode White_Space character.
_OTHER, _LETTER, _NUMBER, _SPACE, _NEWLINE = range(5)

#: Unicode's White_Space property (what Oniguruma's \s means in the reference tokenizer); a fixed, short list.
_WHITE_SPACE = frozenset(
    [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
)


class TokenizerError(Exception):
    """A tokenizer.json that is malformed (``reason == 'format'``) or of a kind not reproduced (``'unsupported'``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"tokenizer.json: {message}")
        self.reason = reason


def _char_class(ch: str) -> int:
    code = ord(ch)
    if code in (0x0A, 0x0D):
        return _NEWLINE
    if code in _WHITE_SPACE:
        return _SPACE
    category = unicodedata.category(ch)
    if category[0] == "L":
        return _LETTER
    if category[0] == "N":
        return _NUMBER
    return _OTHER


def _byte_to_char() -> list[str]:
    """GPT-2's map from a byte to the printable character that stands for it in the vocabulary."""
    chars: list[str] = []
    extra = 0
    for b in range(256):
        printable = 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF
        if printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def qwen2_pieces(text: str) -> list[str]:
    """Splits text as Qwen2's pre-tokenizer pattern does, alternative by alternative in the regex's order."""
    classes = [_char_class(c) for c in text]
    n = len(text)
    pieces: list[str] = []
    i = 0
    while i < n:
        j = _piece_end(text, classes, i, n)
        pieces.append(text[i:j])
        i = j
    return pieces


def _piece_end(s: str, classes: list[int], i: int, n: int) -> int:
    c = s[i]
    # (?i:'s|'t|'re|'ve|'m|'ll|'d): ASCII letters only.
    if c == "'" and i + 1 < n:
        c1 = s[i + 1].lower() if s[i + 1].isascii() else ""
        if c1 in ("s", "t", "m", "d"):
            return i + 2
        if i + 2 < n and s[i + 2].isascii():
            c2 = s[i + 2].lower()
            if (c2 == "e" and c1 in ("r", "v")) or (c1 == "l" and c2 == "l"):
                return i + 3
    cls = classes[i]
    # [^\r\n\p{L}\p{N}]?\p{L}+
    if cls == _LETTER:
        return _skip(classes, i + 1, n, _LETTER)
    if cls not in (_NEWLINE, _NUMBER) and i + 1 < n and classes[i + 1] == _LETTER:
        return _skip(classes, i + 2, n, _LETTER)
    # \p{N}
    if cls == _NUMBER:
        return i + 1
    # ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    j = -1
    if cls == _OTHER:
        j = i
    elif c == " " and i + 1 < n and classes[i + 1] == _OTHER:
        j = i + 1
    if j >= 0:
        j = _skip(classes, j, n, _OTHER)
        return _skip(classes, j, n, _NEWLINE)
    # Whitespace: \s*[\r\n]+ up to the run's last newline; else \s+(?!\S), all but the last unless at the end.
    last_newline = -1
    j = i
    while j < n and classes[j] in (_SPACE, _NEWLINE):
        if classes[j] == _NEWLINE:
            last_newline = j
        j += 1
    if last_newline >= 0:
        return last_newline + 1
    if j == n:
        return n
    return j - 1 if j - i >= 2 else j


def _skip(classes: list[int], j: int, n: int, cls: int) -> int:
    while j < n and classes[j] == cls:
        j += 1
    return j


class BpeTokenizer:
    """Encodes and decodes as the Hugging Face tokenizer of the same file does (see the module comment)."""

    def __init__(self, spec: Any) -> None:
        if not isinstance(spec, dict):
            raise TokenizerError("format", "not an object")
        model = spec.get("model")
        if not isinstance(model, dict) or model.get("type") != "BPE":
            raise TokenizerError("unsupported", "model is not BPE")
        vocab = model.get("vocab")
        merges = model.get("merges")
        if not isinstance(vocab, dict) or not isinstance(merges, list):
            raise TokenizerError("format", "model.vocab or model.merges")
        for key in ("continuing_subword_prefix", "end_of_word_suffix", "dropout"):
            if model.get(key):
                raise TokenizerError("unsupported", f"model.{key}")
        if model.get("byte_fallback") is True:
            raise TokenizerError("unsupported", "byte_fallback")
        self._ignore_merges = model.get("ignore_merges") is True
        self._nfc = _plan_normalizer(spec.get("normalizer"))
        self._split = _plan_pre_tokenizer(spec.get("pre_tokenizer"))

        self._vocab: dict[str, int] = vocab
        id_to_token: dict[int, str] = {}
        for token, id_ in vocab.items():
            if not isinstance(id_, int) or id_ < 0:
                raise TokenizerError("format", f"vocab id of {token!r}")
            id_to_token[id_] = token
        chars = _byte_to_char()
        self._byte_ids: list[int] = []
        self._char_to_byte: dict[str, int] = {}
        for b, ch in enumerate(chars):
            if ch not in vocab:
                raise TokenizerError("format", f"no token for byte {b}")
            self._byte_ids.append(vocab[ch])
            self._char_to_byte[ch] = b

        self.added: dict[str, int] = {}
        self.special: dict[str, int] = {}
        for t in spec.get("added_tokens") or []:
            if not isinstance(t, dict) or not isinstance(t.get("content"), str) or not isinstance(t.get("id"), int) or not t["content"]:
                raise TokenizerError("format", "an added token")
            if t.get("lstrip") or t.get("rstrip") or t.get("single_word"):
                raise TokenizerError("unsupported", f"added token {t['content']} with lstrip, rstrip or single_word")
            is_special = t.get("special") is True
            if t.get("normalized", not is_special) is True and self._nfc:
                raise TokenizerError("unsupported", f"normalized added token {t['content']}")
            self.added[t["content"]] = t["id"]
            if is_special:
                self.special[t["content"]] = t["id"]
            id_to_token[t["id"]] = t["content"]
        self._added_by_length = sorted(self.added, key=len, reverse=True)
        self._added_ids = frozenset(self.added.values())
        self._id_to_token = id_to_token
        self.vocab_size = max(id_to_token) + 1 if id_to_token else 0

        self._ranks: dict[tuple[int, int], int] = {}
        self._merged: list[int] = []
        for rank, m in enumerate(merges):
            if isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m):
                left, right = m
            elif isinstance(m, str) and " " in m[1:]:
                space = m.index(" ", 1)
                left, right = m[:space], m[space + 1 :]
            else:
                raise TokenizerError("format", f"merge {rank}")
            a, b, merged = vocab.get(left), vocab.get(right), vocab.get(left + right)
            if a is None or b is None or merged is None:
                raise TokenizerError("format", f"merge {rank} ({left} {right}) names a token not in the vocabulary")
            self._ranks.setdefault((a, b), rank)
            self._merged.append(merged)
        self._cache: dict[str, list[int]] = {}

    # ---- encoding ------------------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """The ids of ``text`` (no BOS/EOS: Qwen adds none)."""
        out: list[int] = []
        for section, added in self._sections(text):
            if added is not None:
                out.append(added)
                continue
            normalized = unicodedata.normalize("NFC", section) if self._nfc else section
            pieces = qwen2_pieces(normalized) if self._split else ([normalized] if normalized else [])
            for piece in pieces:
                out.extend(self._piece(piece))
        return out

    def _sections(self, text: str) -> Iterable[tuple[str, int | None]]:
        """Text between added tokens, and the added tokens (longest first at the leftmost position)."""
        if not self.added:
            yield text, None
            return
        i = last = 0
        n = len(text)
        while i < n:
            match = next((t for t in self._added_by_length if text.startswith(t, i)), None)
            if match is None:
                i += 1
                continue
            if i > last:
                yield text[last:i], None
            yield match, self.added[match]
            i += len(match)
            last = i
        if last < n:
            yield text[last:], None

    def _piece(self, piece: str) -> list[int]:
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        symbols = [self._byte_ids[b] for b in piece.encode("utf-8", errors="replace")]
        if self._ignore_merges and len(symbols) > 1:
            whole = self._vocab.get("".join(self._id_to_token[s] for s in symbols))
            if whole is not None:
                symbols = [whole]
        while len(symbols) > 1:
            best_rank, best_at = None, -1
            for t in range(len(symbols) - 1):
                rank = self._ranks.get((symbols[t], symbols[t + 1]))
                if rank is not None and (best_rank is None or rank < best_rank):
                    best_rank, best_at = rank, t
            if best_rank is None:
                break
            merged = self._merged[best_rank]
            pair = (symbols[best_at], symbols[best_at + 1])
            # Merge every occurrence of the pair, left to right, as the reference does for one rank.
            out: list[int] = []
            t = 0
            while t < len(symbols):
                if t < len(symbols) - 1 and (symbols[t], symbols[t + 1]) == pair:
                    out.append(merged)
                    t += 2
                else:
                    out.append(symbols[t])
                    t += 1
            symbols = out
        if len(piece) <= 64 and len(self._cache) < 200_000:
            self._cache[piece] = symbols
        return symbols

    # ---- decoding ------------------------------------------------------------------------------------------

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``; added tokens as their content, invalid UTF-8 as U+FFFD."""
        parts: list[str] = []
        pending = bytearray()
        for id_ in ids:
            token = self._id_to_token.get(id_)
            if token is None:
                raise TokenizerError("format", f"no token has id {id_}")
            if id_ in self._added_ids:
                parts.append(pending.decode("utf-8", errors="replace"))
                pending.clear()
                parts.append(token)
                continue
            for ch in token:
                b = self._char_to_byte.get(ch)
                if b is None:
                    raise TokenizerError("format", f"token {id_} has a character outside the byte alphabet")
                pending.append(b)
        parts.append(pending.decode("utf-8", errors="replace"))
        return "".join(parts)

    def token_id(self, token: str) -> int | None:
        """The id of a token string (an added token's content, or a vocabulary entry)."""
        return self.added.get(token, self._vocab.get(token))


def _plan_normalizer(config: Any) -> bool:
    """Whether the normalizer is NFC; no normalizer is fine, anything else is refused."""
    if config is None:
        return False
    if isinstance(config, dict) and config.get("type") == "NFC":
        return True
    if isinstance(config, dict) and config.get("type") == "Sequence" and isinstance(config.get("normalizers"), list):
        kinds = [n.get("type") if isinstance(n, dict) else None for n in config["normalizers"]]
        if kinds == []:
            return False
        if kinds == ["NFC"]:
            return True
    raise TokenizerError("unsupported", f"normalizer {json.dumps(config)[:80]}")


def _plan_pre_tokenizer(config: Any) -> bool:
    """True: Qwen2's Split + ByteLevel; False: ByteLevel alone without its regex (the tiny models' byte files)."""
    if not isinstance(config, dict):
        raise TokenizerError("unsupported", "no pre_tokenizer")
    steps = config.get("pretokenizers") if config.get("type") == "Sequence" else [config]
    if not isinstance(steps, list):
        raise TokenizerError("format", "pre_tokenizer.pretokenizers")
    split = False
    for step in steps:
        kind = step.get("type") if isinstance(step, dict) else None
        if kind == "Split":
            pattern = step.get("pattern") or {}
            if pattern.get("Regex") != QWEN2_PATTERN or step.get("behavior") != "Isolated" or step.get("invert"):
                raise TokenizerError("unsupported", "a Split pre-tokenizer other than Qwen2's")
            split = True
        elif kind == "ByteLevel":
            if step.get("use_regex") is True:
                raise TokenizerError("unsupported", "ByteLevel with its own regex")
            if step.get("add_prefix_space") is True:
                raise TokenizerError("unsupported", "ByteLevel add_prefix_space")
        else:
            raise TokenizerError("unsupported", f"pre-tokenizer {kind}")
    return split


def load_tokenizer_file(path: str) -> BpeTokenizer:
    """Reads a tokenizer.json (plain, or gzipped as media/qwen2.5-tokenizer.json.gz) and builds the tokenizer."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        spec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TokenizerError("format", f"{path} is not JSON ({error})") from error
    return BpeTokenizer(spec)
