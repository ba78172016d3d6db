"""A pretrained transformer in memory (a keras-hub ``CausalLM``) and its botkit model folder.

A fine-tune of a shared base keeps only what changed. Layout::

    config.json          format_version, family "transformer", the base (spec and content hash),
                         the framing, labels, which layers were trained, the training config
    trained.safetensors  the trained layers' weights (the base's other layers are not copied)
    resume/              the latest trained weights, optimizer variables and state, for --resume

Loading builds the base from its spec (the cache, a folder, a keras-hub preset), checks its
content hash and puts the trained layers back. Which layers train is a choice of cost: on a CPU
the top fifth of the blocks (and the final norm) learns at about twice the tokens/s of a full
fine-tune in half the memory, and its folder holds a fifth of the weights (README, bench).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from botkit import __version__
from botkit.atomic import ensure_folder, write_bytes
from botkit.model.saving import ModelFolderError
from botkit.model_folder import is_transformer
from botkit.pretrained.sources import BaseModel, PretrainedError, content_hash, is_pretrained, resolve
from botkit.pretrained.text import Framing, Tokens

FORMAT_VERSION = 1
FAMILY = "transformer"
CONFIG, TRAINED, RESUME = "config.json", "trained.safetensors", "resume"


def load_causal_lm(base: BaseModel) -> Any:
    """The keras-hub causal LM of ``base`` (its weights included), without a preprocessor: botkit tokenizes."""
    import keras_hub

    try:
        return keras_hub.models.CausalLM.from_preset(base.preset, preprocessor=None)
    except (OSError, ValueError, KeyError) as exc:
        raise PretrainedError(f"{base.spec}: keras-hub cannot load it as a causal language model ({str(exc).splitlines()[0]})") from None


def blocks(lm: Any) -> list[Any]:
    """The transformer blocks, bottom to top."""
    return list(lm.backbone.transformer_layers)


def trained_layers(lm: Any, top: int | None) -> list[str]:
    """The layers a fine-tune trains: the top ``top`` blocks and the final norm (None or 0: every layer)."""
    stack = blocks(lm)
    if not top or top >= len(stack):
        return [layer.name for layer in lm.backbone.layers if layer.weights]
    names = [layer.name for layer in stack[-top:]]
    norm = getattr(lm.backbone, "layer_norm", None)
    return names + ([norm.name] if norm is not None else [])


def freeze_except(lm: Any, names: list[str]) -> None:
    keep = set(names)
    for layer in lm.backbone.layers:
        layer.trainable = layer.name in keep


def layer_weights(lm: Any, names: list[str]) -> dict[str, np.ndarray]:
    """The variables of ``names`` by ``layer/index`` (the order Keras keeps them in): what a folder stores."""
    return {f"{name}/{i}": np.asarray(v) for name in names for i, v in enumerate(lm.backbone.get_layer(name).weights)}


def set_layer_weights(lm: Any, values: dict[str, np.ndarray], where: Path) -> None:
    for key, value in values.items():
        name, _, index = key.rpartition("/")
        try:
            variable = lm.backbone.get_layer(name).weights[int(index)]
        except (ValueError, IndexError):
            raise ModelFolderError(f"{where}: holds {key}, which the base model does not have") from None
        if tuple(variable.shape) != value.shape:
            raise ModelFolderError(f"{where}: {key} is {value.shape}, the base model's is {tuple(variable.shape)}")
        variable.assign(value)


def write_weights(path: Path, values: dict[str, np.ndarray]) -> None:
    """The weights as one safetensors file, written atomically (a full disk leaves the old file)."""
    from safetensors.numpy import save

    write_bytes(path, save({k: np.ascontiguousarray(v) for k, v in values.items()}), what="model file")


def read_weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return dict(load_file(str(path)))
    except FileNotFoundError:
        raise ModelFolderError(f"{path}: missing") from None
    except (SafetensorError, OSError, ValueError):
        raise ModelFolderError(f"{path}: truncated or not a safetensors file") from None


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_bytes(path, json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8"), what="model file")


@dataclass
class FineTune:
    """What a transformer model folder says about itself (config.json), and the model once loaded."""

    base: dict[str, Any]  # spec, sha256, architecture
    framing: Framing
    labels: list[str] = field(default_factory=list)
    conditional: bool = False
    layers: list[str] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        model = {"family": FAMILY, "base": self.base.get("spec"), "architecture": self.base.get("architecture"), "trained_layers": len(self.layers)}
        return {
            "format_version": FORMAT_VERSION, "botkit_version": __version__, "family": FAMILY, "level": "bpe", "model": model, "base": self.base,
            "framing": {"sep": self.framing.sep}, "labels": self.labels, "conditional": self.conditional,
            "trained_layers": self.layers, "training": self.training,
        }  # fmt: skip

    @classmethod
    def read(cls, path: Path) -> FineTune:
        config_path = path / CONFIG
        try:
            data = json.loads(config_path.read_text(encoding="utf-8"))
            return cls(
                base=dict(data["base"]), framing=Framing(int(data["framing"]["sep"])), labels=[str(x) for x in data.get("labels") or []],
                conditional=bool(data.get("conditional")), layers=[str(x) for x in data["trained_layers"]], training=dict(data.get("training") or {}),
            )  # fmt: skip
        except FileNotFoundError:
            raise ModelFolderError(f"{config_path}: missing; {path} is not a botkit model folder") from None
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise ModelFolderError(f"{config_path}: truncated or not a botkit transformer config") from None


def base_record(base: BaseModel, lm: Any) -> dict[str, Any]:
    return {"spec": base.spec, "sha256": content_hash(base), "architecture": type(lm).__name__}


def find_base(record: dict[str, Any], where: Path) -> BaseModel:
    """The base a fine-tune names, checked against its content hash; what is missing, said plainly."""
    spec = str(record.get("spec"))
    try:
        base = resolve(spec)
    except PretrainedError as exc:
        raise ModelFolderError(f"{where}: its base model is missing: {exc}") from None
    expected, found = record.get("sha256"), content_hash(base)
    if expected and found != expected:
        raise ModelFolderError(f"{where}: its base {spec} has changed (sha256 {found[:12] if found else None}…, the model was trained on {expected[:12]}…)")
    return base


@dataclass
class Loaded:
    """A fine-tuned transformer ready to generate or score."""

    path: Path
    lm: Any
    tokens: Tokens
    tune: FineTune


def load(path: str | Path) -> Loaded:
    """A fine-tuned model folder, or (zero-shot) a pretrained model by its ``--from`` spec as it is."""
    if not is_transformer(path) and is_pretrained(path):
        base = resolve(path)
        lm = load_causal_lm(base)
        tokens = Tokens(base)
        return Loaded(Path(path), lm, tokens, FineTune(base_record(base, lm), Framing(tokens.end), training={"zero_shot": True}))
    path = Path(path)
    if not path.is_dir():
        raise ModelFolderError(f"{path}: no such model folder (train one with: botkit train CORPUS --from smollm2 -o {path})")
    tune = FineTune.read(path)
    base = find_base(tune.base, path)
    lm = load_causal_lm(base)
    set_layer_weights(lm, read_weights(path / TRAINED), path / TRAINED)
    return Loaded(path, lm, Tokens(base), tune)


def save(path: Path, lm: Any, tune: FineTune) -> None:
    """Write the trained layers and the config (config last: a folder with a config is complete)."""
    ensure_folder(path, "model folder")
    write_weights(path / TRAINED, layer_weights(lm, tune.layers))
    write_json(path / CONFIG, tune.to_json())


def keras_dtype_policy(mixed: bool) -> None:
    """bfloat16 compute (float32 variables) where asked: fast only on CPUs with bf16 units (AMX,
    AVX512-BF16) and GPUs; elsewhere float32 is faster (README)."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if mixed else "float32")
