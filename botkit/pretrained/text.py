"""Text ↔ token ids for a pretrained model, and how a document is framed for it.

A Hugging Face folder's ``tokenizer.json`` is read by ``tokenizers`` (the same Rust code that wrote
it, so the ids are exactly the model's: keras-hub's own BPE splits runs of spaces differently); a
keras-hub preset's tokenizer by keras-hub.

Framing (:class:`Framing`), the one place that decides what the model sees around a text:
``SEP [label] parent REPLY text SEP``. ``SEP`` is the model's own end-of-text token, before and after
every document as in pretraining; the label is control text (``[politics] ``) so that ``--label``
conditions generation; a reply model's parent comes before :data:`REPLY`. Only the text and the
closing ``SEP`` carry loss and score: labels and parents are context, as for the LSTM.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from botkit.pretrained.sources import BaseModel, PretrainedError

#: End-of-text tokens, most preferred first: the first one the vocabulary has frames documents.
END_TOKENS = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|im_end|>")
#: Between a parent and its reply (a reply model's documents).
REPLY = "\n↳ "


class Tokens:
    """A model's tokenizer: ``encode``/``decode`` and the id of a special token."""

    def __init__(self, base: BaseModel) -> None:
        folder = base.folder
        self._fast: Any = None
        self._hub: Any = None
        #: Control tokens (chat markers and the like): never sampled, except the end-of-text token.
        self.special: list[int] = []
        # A keras-hub preset folder (metadata.json) keeps its own tokenizer config under the same name.
        if folder is not None and (folder / "tokenizer.json").is_file() and not (folder / "metadata.json").is_file():
            from tokenizers import Tokenizer

            self._fast = Tokenizer.from_file(str(folder / "tokenizer.json"))
            self.size = self._fast.get_vocab_size(with_added_tokens=True)
            self.special = [int(i) for i, token in self._fast.get_added_tokens_decoder().items() if token.special]
        else:
            import keras_hub

            try:
                self._hub = keras_hub.models.Tokenizer.from_preset(base.preset)
            except (OSError, ValueError) as exc:
                raise PretrainedError(f"{base.spec}: cannot load its tokenizer ({exc})") from None
            self.size = int(self._hub.vocabulary_size())
            self.special = [int(i) for i in getattr(self._hub, "special_token_ids", [])]
        self.end = self._end_id(folder)

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        if self._fast is not None:
            return list(self._fast.encode(text, add_special_tokens=False).ids)
        return [int(i) for i in np.asarray(self._hub.tokenize(text))]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        ids = [int(i) for i in ids]
        if not ids:
            return ""
        if self._fast is not None:
            return str(self._fast.decode(ids, skip_special_tokens=False))
        out = self._hub.detokenize(np.asarray(ids, np.int32))
        return out if isinstance(out, str) else bytes(np.asarray(out).item()).decode("utf-8", "replace")

    def id_of(self, token: str) -> int | None:
        if self._fast is not None:
            found = self._fast.token_to_id(token)
            return None if found is None else int(found)
        try:
            return int(self._hub.token_to_id(token))
        except (KeyError, ValueError):
            return None

    def _end_id(self, folder: Path | None) -> int:
        for token in END_TOKENS:
            found = self.id_of(token)
            if found is not None:
                return found
        if folder is not None and (folder / "tokenizer_config.json").is_file():
            eos = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get("eos_token")
            found = self.id_of(eos if isinstance(eos, str) else (eos or {}).get("content", ""))
            if found is not None:
                return found
        if self._hub is not None and getattr(self._hub, "end_token_id", None) is not None:
            return int(self._hub.end_token_id)
        raise PretrainedError("the model's tokenizer has no end-of-text token to separate documents with")


@dataclass(frozen=True)
class Framing:
    """How documents are laid out for the model (recorded in the model folder, so generation and
    eval frame them exactly as training did)."""

    sep: int

    @staticmethod
    def label_text(label: str) -> str:
        return f"[{label}] "

    def context(self, tokens: Tokens, label: str | None, parent: str | None) -> list[int]:
        """What comes before a document's text: the separator, the label, the parent and :data:`REPLY`."""
        ids = [self.sep]
        if label is not None:
            ids += tokens.encode(self.label_text(label))
        if parent is not None:
            ids += tokens.encode(parent) + tokens.encode(REPLY)
        return ids

    def document(self, tokens: Tokens, text: str, label: str | None, parent: str | None) -> tuple[list[int], list[int]]:
        """A document's ids and which of them are targets (1: the text and the closing separator)."""
        context, body = self.context(tokens, label, parent), tokens.encode(text) + [self.sep]
        return context + body, [0] * len(context) + [1] * len(body)
