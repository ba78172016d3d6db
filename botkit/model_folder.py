"""What a model folder (``weights/NAME``) says about itself, read without TensorFlow.

A model folder of either family holds a ``config.json``: its ``family`` ("transformer" for a
fine-tuned pretrained model, absent for an LSTM), and its ``training`` part (the settings, the
corpus it learnt from, whether it writes replies, the result and per-epoch curves). The console,
the config checks and the filters need those facts on machines and at moments where loading
TensorFlow would cost seconds; :mod:`botkit.model.saving` and :mod:`botkit.pretrained.model`
load the model itself. This is the one reader of that file for everyone who does not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFIG = "config.json"
#: The latest training state of a folder whose training can go on (``--resume``): its curves too.
RESUME_STATE = "resume/state.json"
#: The name that also finds the model shipped with botkit (``--from base``, ``model: base``).
BASE = "base"


def resolve(path: str | Path) -> Path:
    """A model folder by path; the bare name ``base`` also finds the model shipped with botkit."""
    folder = Path(path)
    if str(path) == BASE and not folder.exists():
        from importlib.resources import files

        return Path(str(files("botkit.weights"))) / BASE
    return folder


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def described(path: str | Path) -> dict[str, Any] | None:
    """The folder's config.json, or None where there is none to read (the loaders say why)."""
    return read_json(resolve(path) / CONFIG)


def is_transformer(path: str | Path) -> bool:
    """Whether the folder holds a fine-tuned transformer (config.json's ``family``)."""
    return (described(path) or {}).get("family") == "transformer"


def training(path: str | Path) -> dict[str, Any]:
    """The training part of the folder's config.json; empty where it has none."""
    part = (described(path) or {}).get("training")
    return dict(part) if isinstance(part, dict) else {}
