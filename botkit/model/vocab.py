"""One vocabulary for both levels: characters, or words with punctuation and casing tokens.

Ids are fixed by position in ``tokens``: 0 is padding, then the special tokens, then the corpus's
tokens by falling frequency. Fine-tuning appends new tokens at the end, so every id a trained
model knows keeps its meaning (the embedding and output matrices only grow).

Word level lowercases words and puts a casing token before words that were not lowercase
(``<cap>`` for "Word", ``<upper>`` for "WORD"); mixed-case words ("iPhone") stay tokens of their
own. That keeps the vocabulary small, and spacing tokens where the spacing rules fail (see
:func:`split_words`) let :meth:`Vocabulary.decode` give back the text exactly.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

import numpy as np

from botkit.errors import BotkitError

Level = Literal["char", "word"]

PAD, SEP, UNK, CAP, UPPER = "<pad>", "<sep>", "<unk>", "<cap>", "<upper>"
PAD_ID, SEP_ID, UNK_ID = 0, 1, 2
SPECIALS: dict[str, tuple[str, ...]] = {"char": (PAD, SEP, UNK), "word": (PAD, SEP, UNK, CAP, UPPER)}
#: Between a parent and its reply in a reply model's documents (``<sep> parent <reply> reply <sep>``).
#: Not one of the fixed specials, so vocabularies saved before reply models load unchanged: it is
#: the first token after the specials of a vocabulary built from a pair corpus (appended when a
#: plain model is fine-tuned on pairs), and a model is conditional exactly when its vocabulary has it.
#: No text encodes to it (one character at char level; ``<`` is a token of its own at word level).
REPLY = "<reply>"
_SILENT = (PAD, SEP, REPLY)  # structure, not text: decoding drops them
NO_LABEL = ""  # label id 0: documents without a label

# A word is letters/digits with inner apostrophes, hyphens and dots kept ("don't", "well-known",
# "github.com", "17.10"), digit groups ("1,000", "10:30"), "AT&T", and a trailing "++"/"#" ("C++",
# "C#"); a URL or an emoticon is one token; anything else that is not a space is a token of its
# own, and so is a newline (line structure matters in titles and chats). Whitespace between tokens
# is not a token: the spacing rules of :class:`_Spacer` rebuild it, and only where they would be
# wrong does :func:`split_words` emit the exact gap (``GLUE`` for none), so text round-trips exactly.
_WORD_RE = re.compile(
    r"\n"
    r"|https?://[^\s]*[^\s.,;:!?)\]'\"]"
    r"|(?<!\S)(?:[:;=][-'^]?[()\[\]DPpO3/\\|*]|<3|\^_\^)(?!\S)"
    r"|[^\W_]+(?:(?:['’.\-]|(?<=\d)[,:](?=\d)|(?<=[A-Z])&(?=[A-Z]))[^\W_]+)*(?:\+\+|#(?![^\W_]))?"
    r"|[^\s]"
)
_NO_SPACE_BEFORE = set(".,!?;:%)]}»…\n/”’")
_NO_SPACE_AFTER = set("([{«¿¡$#@\n/“‘")
_QUOTES = set("\"'")
GLUE = "<glue>"  # "no space here", where the spacing rules would put one


class VocabError(BotkitError):
    """A vocabulary file is missing or malformed."""


class _Spacer:
    """The spacing rules, left to right: whether a space goes before each next token.

    :func:`split_words` runs the same rules over the real text and records every gap they get
    wrong, so :func:`join_words` (and generation, which decodes as it goes) gives back the text
    exactly. The quote state is reset at a newline: a single text is tokenised line by line.
    """

    def __init__(self) -> None:
        self.glue = True  # no space before the next token (start of text, after "(", "$", ...)
        self.open_quote = False

    def space_before(self, token: str) -> bool:
        if token in _QUOTES:
            return not self.glue and not self.open_quote
        return not self.glue and token not in _NO_SPACE_BEFORE

    def advance(self, token: str) -> None:
        if token in _QUOTES:
            self.open_quote = not self.open_quote
            self.glue = self.open_quote
        else:
            self.glue = token in _NO_SPACE_AFTER
            if token == "\n":
                self.open_quote = False


def _cased(piece: str) -> Iterator[str]:
    """A word as tokens: lowercase with a casing mark when that gives the word back exactly."""
    lower = piece.lower()
    if piece == lower:
        yield piece
    elif piece == lower.capitalize():
        yield CAP
        yield lower
    elif piece == lower.upper():
        yield UPPER
        yield lower
    else:
        yield piece  # "iPhone", "McDonald": a token of its own


def is_spacing(token: str) -> bool:
    """A layout token of :func:`split_words`: ``GLUE`` or a gap of whitespace."""
    return token == GLUE or token.isspace() and token != "\n"


def split_words(text: str) -> Iterator[str]:
    """Word-level tokens of ``text``: casing marks, lowercased words, punctuation, newlines, and
    the gaps the spacing rules would get wrong (see :class:`_Spacer`)."""
    spacer = _Spacer()
    end = 0
    for match in _WORD_RE.finditer(text):
        piece, gap = match.group(), text[end : match.start()]
        if gap != (" " if spacer.space_before(piece) else ""):
            yield gap or GLUE
        spacer.advance(piece)
        end = match.end()
        yield from _cased(piece)
    if end < len(text):
        yield text[end:]


def join_words(tokens: Iterable[str]) -> str:
    """Inverse of :func:`split_words`: exact for what it produced."""
    out: list[str] = []
    spacer = _Spacer()
    case: str | None = None
    gap: str | None = None  # an explicit gap before the next token
    for token in tokens:
        if token in (CAP, UPPER):
            case = token
        elif is_spacing(token):
            gap = "" if token == GLUE else token
        elif token not in _SILENT:
            word = token.capitalize() if case == CAP else token.upper() if case == UPPER else token
            out.append((" " if spacer.space_before(token) else "") if gap is None else gap)
            out.append(word)
            spacer.advance(token)
            case = gap = None
    if gap:
        out.append(gap)
    return "".join(out)


@dataclass
class Vocabulary:
    """Token and label tables; ``encode``/``decode`` between text and ids."""

    level: Level
    tokens: list[str]
    labels: list[str] = field(default_factory=lambda: [NO_LABEL])

    def __post_init__(self) -> None:
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        self._label_ids = {label: i for i, label in enumerate(self.labels)}
        self._char_table: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def dtype(self) -> type[np.unsignedinteger]:
        """Smallest unsigned type that holds every id: the on-disk token file uses it."""
        return np.uint16 if len(self.tokens) <= 1 << 16 else np.uint32

    @property
    def labelled(self) -> bool:
        return len(self.labels) > 1

    @property
    def reply_id(self) -> int | None:
        """Id of :data:`REPLY` in a reply model's vocabulary; None for a model that only posts."""
        return self._ids.get(REPLY)

    @property
    def conditional(self) -> bool:
        """A reply model: trained on (parent, reply) pairs, it writes replies to a given parent."""
        return self.reply_id is not None

    def split(self, text: str) -> list[str]:
        """Tokens of ``text``; a model trained before spacing tokens existed does not get them."""
        if self.level == "char":
            return list(text)
        return [t for t in split_words(text) if t in self._ids or not is_spacing(t)]

    def encode(self, text: str) -> np.ndarray:
        """Ids of ``text``; tokens outside the vocabulary become ``<unk>``."""
        if self.level == "char":
            return self._encode_chars(text)
        return np.fromiter((self._ids.get(t, UNK_ID) for t in self.split(text)), dtype=self.dtype)

    def _encode_chars(self, text: str) -> np.ndarray:
        # A code-point lookup table makes encoding a vectorised gather: ~100× a per-char dict.get.
        if self._char_table is None:
            table = np.full(0x110000, UNK_ID, dtype=self.dtype)
            for token, i in self._ids.items():
                if len(token) == 1:
                    table[ord(token)] = i
            self._char_table = table
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        return self._char_table[points]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; padding and separators are dropped, ``<unk>`` is kept visible."""
        tokens = [self.tokens[i] for i in ids]
        if self.level == "char":
            return "".join("" if t in _SILENT else t for t in tokens)
        return join_words(tokens)

    def label_id(self, label: str | None) -> int:
        """Id of a trained label; an unknown label is a user error (say which ones exist)."""
        if label is None:
            return 0
        try:
            return self._label_ids[label]
        except KeyError:
            known = ", ".join(self.labels[1:21]) or "none (the model was trained without labels)"
            raise VocabError(f"label {label!r} is not one the model was trained on (known: {known})") from None

    def known_label_id(self, label: str | None) -> int:
        """Id of ``label``, or 0 ("no label") when the model was not trained on it."""
        return self._label_ids.get(label, 0) if label is not None else 0

    def extended(self, tokens: Iterable[str], labels: Iterable[str]) -> Vocabulary:
        """This vocabulary plus any new tokens and labels, appended so old ids keep their meaning."""
        new_tokens = list(self.tokens) + [t for t in dict.fromkeys(tokens) if t not in self._ids]
        new_labels = list(self.labels) + [label for label in dict.fromkeys(labels) if label not in self._label_ids]
        return Vocabulary(self.level, new_tokens, new_labels)

    def to_json(self) -> dict[str, object]:
        return {"level": self.level, "tokens": self.tokens, "labels": self.labels}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """The vocabulary saved at ``path``, every part's type checked: a hand-edited or damaged
        file (``"tokens": 5``, ``"labels": null``, a number among the tokens) is one
        :class:`VocabError` naming the file and the part, never a ``TypeError`` where it is used."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise VocabError(f"{path}: vocabulary file not found") from None
        except IsADirectoryError:
            raise VocabError(f"{path}: is a folder, expected a vocabulary file") from None
        except OSError as exc:
            raise VocabError(f"{path}: cannot read vocabulary file ({exc.strerror or exc})") from None
        except (ValueError, UnicodeDecodeError):
            raise VocabError(f"{path}: not a botkit vocabulary file (not valid JSON)") from None
        if not isinstance(data, dict) or not all(key in data for key in ("level", "tokens", "labels")):
            raise VocabError(f"{path}: not a botkit vocabulary file (expected a JSON object with level, tokens, labels)")
        level = data["level"]
        if not isinstance(level, str) or level not in SPECIALS:
            raise VocabError(f"{path}: level: expected one of {', '.join(map(repr, SPECIALS))} (got {_shown(level)})")
        tokens, labels = _strings(path, "tokens", data["tokens"]), _strings(path, "labels", data["labels"])
        if tokens[: len(SPECIALS[level])] != list(SPECIALS[level]):
            raise VocabError(f"{path}: not a botkit vocabulary file (a {level}-level one's tokens start with {', '.join(SPECIALS[level])})")
        if not labels:
            raise VocabError(f"{path}: labels: expected at least the empty label (no label) first")
        return cls(cast(Level, level), tokens, labels)


def _shown(value: object) -> str:
    """A JSON value as the file has it, cut short for a one-line message."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:40] + "…"


def _strings(path: Path, key: str, value: object) -> list[str]:
    """``value`` as a list of strings, or a :class:`VocabError` naming ``key`` and the first bad item."""
    if not isinstance(value, list):
        raise VocabError(f"{path}: {key}: expected a list of strings (got {_shown(value)})")
    for number, item in enumerate(value):
        if not isinstance(item, str):
            raise VocabError(f"{path}: {key}: item {number} is {_shown(item)}, expected a string")
    return list(value)


class VocabularyBuilder:
    """Counts tokens and labels in one streaming pass; :meth:`build` caps and orders them."""

    def __init__(self, level: Level, max_words: int | None = None) -> None:
        self.level = level
        self.max_words = max_words
        self.counts: Counter[str] = Counter()
        self.labels: dict[str, None] = {}  # first-seen order keeps label ids stable across runs
        self.conditional = False  # a document had a parent: the vocabulary gets REPLY

    def add(self, text: str, label: str | None = None, parent: str | None = None) -> None:
        self.counts.update(text if self.level == "char" else split_words(text))
        if label is not None:
            self.labels.setdefault(label)
        if parent is not None:
            self.conditional = True
            self.add(parent)

    def build(self) -> Vocabulary:
        specials = SPECIALS[self.level]
        ranked = sorted((t for t in self.counts if t not in specials), key=lambda t: (-self.counts[t], t))
        if self.level == "word" and self.max_words is not None:
            ranked = ranked[: self.max_words]
        reply = [REPLY] if self.conditional else []
        return Vocabulary(self.level, [*specials, *reply, *ranked], [NO_LABEL, *self.labels])

    def new_tokens(self, vocab: Sequence[str]) -> list[str]:
        """Tokens counted here that ``vocab`` lacks, most frequent first (for fine-tuning)."""
        known = set(vocab)
        return [t for t in self.build().tokens if t not in known]
