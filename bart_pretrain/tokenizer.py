"""Byte-level BPE tokenizer (GPT-2's scheme, as BART uses) on the Rust `tokenizers` library, with BART's
special ids fixed: ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3 and ``<mask>`` the last id.

``train_tokenizer`` trains one on text; ``Tokenizer.from_file`` loads our ``tokenizer.json`` or a user's
GPT-2/BART ``vocab.json`` + ``merges.txt`` (a vocabulary without BART's specials, like GPT-2's, is renumbered:
the four specials first, the BPE tokens after them in their order, ``<mask>`` appended).
`bart-pretrain train-tokenizer --files 'corpus/*.txt' --vocab_size 8192 --out tok/` is the CLI.

Objective tokens (T5 spans, gap sentences, UL2) are special tokens right after ``<mask>``, so no id before them moves:
``<mask_sentence>`` = mask + 1, ``[R]``, ``[S]``, ``[X]`` = mask + 2 ... mask + 4, ``<extra_id_0>`` ... = mask + 5 ...
(:meth:`Tokenizer.with_objective_tokens`; pretraining adds them when its recipe ends in an objective).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from bart_pretrain.io import atomic_write_json, atomic_write_text

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
MASK = "<mask>"
MASK_SENTENCE = "<mask_sentence>"
MODE_TOKENS = ("[R]", "[S]", "[X]")
DEFAULT_SENTINELS = 100
"""Sentinels a recipe with an objective adds (T5's 100 ``<extra_id_N>``): up to 99 spans a document."""


def sentinel(i: int) -> str:
    return f"<extra_id_{i}>"


def objective_tokens(sentinels: int) -> list[str]:
    """The objective tokens in id order, as they follow ``<mask>``: ``<mask_sentence>``, ``[R]``, ``[S]``, ``[X]``,
    then ``sentinels`` sentinels ``<extra_id_0>`` ..."""
    return [MASK_SENTENCE, *MODE_TOKENS, *(sentinel(i) for i in range(sentinels))]


# Smallest sensible vocabulary: the specials, the 256 byte symbols, <mask>.
DEFAULT_TOKENIZER = "data/tokenizer/tokenizer.json"
"""Where ``make data`` writes the tokenizer: the default of every ``tokenizer_path`` option (written once, here)."""
MIN_VOCAB_SIZE = len(SPECIALS) + 256 + 1
DEFAULT_VOCAB_SIZE = 8192
"""The vocabulary size of the default tokenizer (``make data``) and of ``train-tokenizer``."""


def tokenizer_not_found(path: str | os.PathLike, flag: str) -> FileNotFoundError:
    """The one error of every command for a tokenizer path (``flag``) that names nothing."""
    return FileNotFoundError(
        f"tokenizer not found: {flag} (looked for {os.path.abspath(path)}); build the default one with `make data`, "
        "or train one with `bart-pretrain train-tokenizer`"
    )


class Tokenizer:
    """A byte-level BPE ``tokenizers.Tokenizer`` with BART's special ids. Encoding never adds specials."""

    bos_id: int = 0
    pad_id: int = 1
    eos_id: int = 2
    unk_id: int = 3

    def __init__(self, backend: tokenizers.Tokenizer):
        for want, token in enumerate(SPECIALS):
            got = backend.token_to_id(token)
            if got != want:
                raise ValueError(
                    f"tokenizer: {token} has id {got}, must be {want} (BART's special ids); for a GPT-2 vocabulary "
                    "load its vocab.json + merges.txt instead (they are renumbered with the specials first)"
                )
        mask_id = backend.token_to_id(MASK)
        if mask_id is None:
            raise ValueError(f"tokenizer: no {MASK} token; BART needs one (the last id)")
        # Text is text: a literal "<mask>" or "</s>" inside a document is encoded as characters, never as a special.
        backend.encode_special_tokens = True
        # Encoding never adds specials, so a post-processor (transformers' tokenizer.json has one, so has our export)
        # is never used: dropped, so one vocabulary and merges give one fingerprint whichever file they came from.
        backend.post_processor = None
        self.backend = backend
        self.mask_id: int = mask_id
        self.vocab_size: int = backend.get_vocab_size(with_added_tokens=True)
        self._word_starts: np.ndarray | None = None
        self.mask_sentence_id: int | None = backend.token_to_id(MASK_SENTENCE)
        """``<mask_sentence>`` (None: no objective tokens); ``mode_ids`` and ``sentinel_ids`` follow it."""
        self.mode_ids: tuple[int, ...] = ()
        self.sentinel_ids: tuple[int, ...] = ()
        if self.mask_sentence_id is not None:
            n = 0
            while backend.token_to_id(sentinel(n)) is not None:
                n += 1
            expected = list(range(mask_id + 1, mask_id + 5 + n))
            got = [backend.token_to_id(t) for t in objective_tokens(n)]
            if got != expected:
                raise ValueError(
                    f"tokenizer: the objective tokens {MASK_SENTENCE}, {', '.join(MODE_TOKENS)}, <extra_id_0...> have "
                    f"ids {got}; they must follow {MASK} ({mask_id}) in this order, at {expected[0]}..{expected[-1]}"
                )
            self.mode_ids, self.sentinel_ids = tuple(expected[1:4]), tuple(expected[4:])

    @property
    def special_ids(self) -> tuple[int, ...]:
        """BART's five special ids, then the objective tokens (if any)."""
        extra = () if self.mask_sentence_id is None else (self.mask_sentence_id, *self.mode_ids, *self.sentinel_ids)
        return (self.bos_id, self.pad_id, self.eos_id, self.unk_id, self.mask_id, *extra)

    def with_objective_tokens(self, sentinels: int = DEFAULT_SENTINELS) -> Tokenizer:
        """This tokenizer with the objective tokens (``<mask_sentence>``, ``[R]``, ``[S]``, ``[X]``, ``sentinels``
        sentinels) appended as special tokens right after ``<mask>``; itself if it already has them all. The ids
        before them do not move, so the model's existing embeddings keep their meaning."""
        if isinstance(sentinels, bool) or not isinstance(sentinels, int) or sentinels < 2:
            raise ValueError(f"sentinels={sentinels!r}: must be an integer >= 2 (a span and the closing sentinel)")
        if len(self.sentinel_ids) >= sentinels:
            return self
        if self.mask_id != self.vocab_size - 1 - (0 if self.mask_sentence_id is None else 4 + len(self.sentinel_ids)):
            raise ValueError(
                f"tokenizer: {MASK} ({self.mask_id}) is not the last id before the objective tokens (vocabulary of "
                f"{self.vocab_size}), so they cannot follow it; use a tokenizer with {MASK} last"
            )
        backend = tokenizers.Tokenizer.from_str(self.backend.to_str())
        have = 0 if self.mask_sentence_id is None else 4 + len(self.sentinel_ids)
        backend.add_special_tokens(objective_tokens(sentinels)[have:])
        return Tokenizer(backend)

    def decode_with_objective_tokens(self, ids, skip_special_tokens: bool = True) -> str:
        """The text of ``ids`` with the objective tokens written out (``<extra_id_0> for inviting <extra_id_1>``) and
        BART's special tokens (``<s>``, ``</s>``, ``<pad>``, ``<mask>``, ``<unk>``) dropped; with
        ``skip_special_tokens=False`` every special token written out (as :meth:`decode`)."""
        if not skip_special_tokens:
            return self.decode(ids, skip_special_tokens=False)
        drop = {self.bos_id, self.pad_id, self.eos_id, self.unk_id, self.mask_id}
        return self.decode([i for i in ids if int(i) not in drop], skip_special_tokens=False)

    # -- loading ------------------------------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike, flag: str = "tokenizer_path") -> Tokenizer:
        """Load ``tokenizer.json``, or a directory holding ``tokenizer.json`` or ``vocab.json`` + ``merges.txt``; a
        missing ``path`` is :func:`tokenizer_not_found` (``flag``: the option that named it)."""
        if not os.path.exists(path):
            raise tokenizer_not_found(path, flag)
        path = Path(path)
        if path.is_dir():
            if (path / "tokenizer.json").is_file():
                path = path / "tokenizer.json"
            elif (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
                return cls.from_vocab_merges(path / "vocab.json", path / "merges.txt")
            else:
                raise ValueError(f"{path}: holds neither tokenizer.json nor vocab.json + merges.txt")
        if not path.is_file():
            raise ValueError(f"{path}: no such tokenizer file")
        try:
            backend = tokenizers.Tokenizer.from_file(str(path))
        except Exception as e:
            raise ValueError(f"{path}: not a `tokenizers` tokenizer.json ({e})") from None
        return cls(backend)

    @classmethod
    def from_str(cls, text: str) -> Tokenizer:
        """From :meth:`to_str`'s output (the tokenizer a checkpoint carries)."""
        return cls(tokenizers.Tokenizer.from_str(text))

    def to_str(self) -> str:
        """The tokenizer serialized as compact ``tokenizer.json`` text."""
        return self.backend.to_str()

    @classmethod
    def from_vocab_merges(cls, vocab_json: str | os.PathLike, merges_txt: str | os.PathLike) -> Tokenizer:
        """A user's GPT-2/BART byte-level BPE files. BART's own vocab keeps its ids (``<mask>`` included); one
        without ``<s>``=0 ... ``<unk>``=3 is renumbered with those first and ``<mask>`` last."""
        try:
            vocab: dict[str, int] = json.loads(Path(vocab_json).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{vocab_json}: cannot read a vocab.json ({e})") from None
        if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
            raise ValueError(f"{vocab_json}: must be a JSON object mapping token -> integer id")
        merges = []
        for n, line in enumerate(Path(merges_txt).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or (n == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{merges_txt}:{n}: a merge is two tokens separated by one space, got {line!r}")
            merges.append((parts[0], parts[1]))
        if any(vocab.get(t) != i for i, t in enumerate(SPECIALS)):
            ordered = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if t not in SPECIALS]
            vocab = {t: i for i, t in enumerate([*SPECIALS, *ordered])}
        if MASK not in vocab:
            vocab[MASK] = max(vocab.values()) + 1
        return cls(_byte_level(models.BPE(vocab=vocab, merges=merges)))

    # -- encoding -----------------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.encodings(texts)]

    def encodings(self, texts: list[str]) -> list[tokenizers.Encoding]:
        """The backend's encodings of ``texts`` (ids, and each token's character ``offsets`` in its text)."""
        return self.backend.encode_batch(list(texts), add_special_tokens=False)

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def token_bytes(self, i: int) -> bytes:
        """The bytes token ``i`` stands for: a byte-level BPE token may hold only part of a multi-byte character, so
        text decoded token by token shows ``�``; join the bytes of several tokens, then decode. A special token gives
        its text (``<mask>``)."""
        token = self.backend.id_to_token(int(i))
        if token is None:
            raise ValueError(f"token id {i}: outside the vocabulary [0, {self.vocab_size})")
        if i in self.special_ids:
            return token.encode()
        if isinstance(self.backend.decoder, decoders.ByteLevel) and all(c in _BYTE_OF for c in token):
            return bytes(_BYTE_OF[c] for c in token)
        return self.decode([i], skip_special_tokens=False).encode()

    def word_start_table(self) -> np.ndarray:
        """bool ``[vocab_size]``: does this token begin a word (``Ġ``/``▁`` prefix; WordPiece: no ``##``)."""
        if self._word_starts is None:
            table = np.zeros(self.vocab_size, dtype=bool)
            for token, i in self.backend.get_vocab(with_added_tokens=True).items():
                if i < self.vocab_size:
                    table[i] = token[:1] in ("\u0120", "\u2581", " ")
            if not table.any():  # WordPiece-style vocabularies mark continuations instead
                for token, i in self.backend.get_vocab(with_added_tokens=True).items():
                    table[i] = not token.startswith("##")
            table[list(self.special_ids)] = False
            self._word_starts = table
        return self._word_starts

    def noise_context(self, max_length: int):
        from noising.base import NoiseContext

        return NoiseContext(
            bos_id=self.bos_id,
            pad_id=self.pad_id,
            eos_id=self.eos_id,
            unk_id=self.unk_id,
            mask_id=self.mask_id,
            vocab_size=self.vocab_size,
            max_length=max_length,
            mask_sentence_id=self.mask_sentence_id,
            mode_ids=self.mode_ids,
            sentinel_ids=self.sentinel_ids,
        )

    def fingerprint(self) -> str:
        """sha256 of the serialized tokenizer: equal tokenizers, equal fingerprints (used as a cache key)."""
        return hashlib.sha256(self.backend.to_str().encode()).hexdigest()

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, mask_id={self.mask_id})"

    # -- saving -------------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write ``tokenizer.json`` atomically. ``path`` ending in ``.json`` is that file; otherwise a directory
        receiving ``tokenizer.json``, ``vocab.json`` and ``merges.txt`` (GPT-2 format, for other tools)."""
        path = Path(path)
        if path.suffix == ".json":
            atomic_write_text(path, self.backend.to_str(pretty=True) + "\n")
            return
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path / "tokenizer.json", self.backend.to_str(pretty=True) + "\n")
        vocab = self.backend.get_vocab(with_added_tokens=True)
        atomic_write_json(path / "vocab.json", dict(sorted(vocab.items(), key=lambda kv: kv[1])))
        merges = json.loads(self.backend.to_str())["model"].get("merges", [])
        lines = [m if isinstance(m, str) else " ".join(m) for m in merges]
        atomic_write_text(path / "merges.txt", "#version: 0.2\n" + "".join(line + "\n" for line in lines))


def _byte_of_symbol() -> dict[str, int]:
    """GPT-2's byte-level alphabet read backwards: the printable symbol a byte-level BPE writes for each byte -> the
    byte (printable ASCII and Latin-1 stand for themselves, the other bytes for the code points from 256 on)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1), *range(ord("\u00ae"), 256)]
    others = [b for b in range(256) if b not in printable]
    return {chr(b): b for b in printable} | {chr(256 + k): b for k, b in enumerate(others)}


_BYTE_OF = _byte_of_symbol()


def _byte_level(model: models.Model, specials: bool = True) -> tokenizers.Tokenizer:
    backend = tokenizers.Tokenizer(model)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    if specials:
        backend.add_special_tokens([*SPECIALS, MASK])  # already in the vocab: marks them special, keeps their ids
    return backend


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2, sentinels: int = 0) -> Tokenizer:
    """Train a byte-level BPE with ``vocab_size`` ids (fewer if the text has too few distinct pairs), ``<mask>`` last;
    with ``sentinels`` > 0, the objective tokens follow it (:meth:`Tokenizer.with_objective_tokens`), beyond
    ``vocab_size``.

    Deterministic: the same texts in the same order give a byte-identical ``tokenizer.json``.
    """
    if isinstance(sentinels, bool) or not isinstance(sentinels, int) or sentinels < 0 or sentinels == 1:
        raise ValueError(f"sentinels={sentinels!r}: must be 0 (no objective tokens) or an integer >= 2")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size={vocab_size!r}: must be an integer >= {MIN_VOCAB_SIZE} (specials + 256 bytes)")
    backend = _byte_level(models.BPE(), specials=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # <mask> is appended after training, as the last id
        min_frequency=min_frequency,
        special_tokens=list(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    backend.add_special_tokens([MASK])
    tokenizer = Tokenizer(backend)
    return tokenizer.with_objective_tokens(sentinels) if sentinels else tokenizer
