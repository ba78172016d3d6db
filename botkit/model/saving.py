"""Saving and loading a model folder (``weights/NAME/``, as ``keras.saving`` does for Keras models):
everything needed to generate (no corpus, no GPU), and to resume training.

Layout::

    config.json          format_version, botkit version, level, model config, training config
    vocab.json           tokens and labels (ids are positions)
    model.weights.h5     Keras weights (the best validation loss when there was validation)
    resume/              latest weights, optimizer variables and step/epoch, for --resume
    cache/               encoded corpora (safe to delete)

Every file is written beside its final name and renamed over it (:mod:`botkit.atomic`), so an
interrupted save or a full disk never leaves a half-written model, only one error naming the file.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from botkit import __version__, model_folder
from botkit.atomic import atomic_output, ensure_folder, write_bytes
from botkit.errors import BotkitError, ConfigError
from botkit.model.network import ModelConfig, build_model
from botkit.model.vocab import VocabError, Vocabulary

FORMAT_VERSION = 1
VOCAB, WEIGHTS, RESUME = "vocab.json", "model.weights.h5", "resume"
CONFIG = model_folder.CONFIG
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class ModelFolderError(BotkitError):
    """A model folder or one of its files is missing, truncated or not botkit's."""


@dataclass
class Saved:
    """A model loaded from a model folder."""

    path: Path
    model: Any  # keras.Model
    config: ModelConfig
    vocab: Vocabulary
    training: dict[str, Any]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_output(path, what="model file") as handle:
        handle.write(json.dumps(data, indent=2, ensure_ascii=False))


def _save_weights(model: Any, path: Path) -> None:
    """Keras weights into memory first, then onto the disk through :func:`botkit.atomic.write_bytes`.

    HDF5 writing straight onto a full disk does not fail cleanly: h5py prints a traceback per
    buffer it cannot write, and the process later dies in its clean-up (a segfault). In memory
    HDF5 cannot fail that way, and a failed plain write is one error naming the file.
    """
    from keras.src.saving import saving_lib  # Keras' save_weights, less its .weights.h5 path check

    buffer = io.BytesIO()
    store = saving_lib.H5IOStore(buffer, mode="w")
    try:
        saving_lib._save_state(model, store, None, "", set())
    finally:
        store.close()
    write_bytes(path, buffer.getvalue(), what="model file")


def save(path: Path, model: Any, config: ModelConfig, vocab: Vocabulary, training: dict[str, Any]) -> None:
    """Write the generation files of a model folder."""
    ensure_folder(path, "model folder")
    _save_weights(model, path / WEIGHTS)
    _write_json(path / VOCAB, vocab.to_json())
    _write_json(
        path / CONFIG,
        {"format_version": FORMAT_VERSION, "botkit_version": __version__, "level": vocab.level, "model": config.to_json(), "training": training},
    )


def record_history(path: Path, history: list[dict[str, Any]]) -> None:
    """Put the whole run's per-epoch losses into ``config.json``, the weights left as they are.

    The weights are those of the best epoch, saved when it ended; the epochs after it belong to
    the curves all the same (they show where it stopped improving).
    """
    data = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    data["training"]["history"] = history
    _write_json(path / CONFIG, data)


def read_training(path: str | Path) -> dict[str, Any]:
    """The training part of a model folder's config.json, whichever family trained it (what the
    filters read: the corpus a model learnt from)."""
    if model_folder.is_transformer(path):
        return model_folder.training(path)
    return read_config(path)[1]


def read_config(path: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """The model and training config of an LSTM model folder, checked."""
    path = model_folder.resolve(path)
    if not path.is_dir():
        raise ModelFolderError(f"{path}: no such model folder (train one with: botkit train CORPUS -o {path})")
    config_path = path / CONFIG
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFolderError(f"{config_path}: missing; {path} is not a botkit model folder") from None
    except (ValueError, UnicodeDecodeError):
        raise ModelFolderError(f"{config_path}: truncated or not a botkit config (not valid JSON)") from None
    if isinstance(data, dict) and data.get("family") == "transformer":
        raise ModelFolderError(f"{path} holds a fine-tuned transformer, not an LSTM model (continue its training with --resume)")
    if not isinstance(data, dict) or "format_version" not in data or "model" not in data:
        raise ModelFolderError(f"{config_path}: not a botkit model config (no format_version/model)")
    version = data["format_version"]
    # Each part's type is checked before it is used, so a hand-edited file gets a line naming it, not a TypeError.
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelFolderError(f"{config_path}: format_version: expected a whole number (got {version!r})")
    if version > FORMAT_VERSION:
        raise ModelFolderError(f"{config_path}: format {version} is newer than this botkit understands ({FORMAT_VERSION}); upgrade botkit")
    problems = []
    try:
        config = ModelConfig.from_json(data["model"], str(config_path))
    except ConfigError as exc:
        problems.append(str(exc))
    training = data.get("training", {})
    if isinstance(training, dict):
        problems += _training_problems(training, str(config_path))
    else:
        problems.append(f"{config_path}: training: expected a mapping of training settings")
    if problems:
        raise ModelFolderError("\n".join(problems))
    return config, training


def _training_problems(training: dict[str, Any], where: str) -> list[str]:
    """What is wrong with the training settings a reader of the model uses (its window, its corpus):
    they are checked against :class:`~botkit.training.TrainConfig`, whose flags wrote them, so a
    hand-edited ``"window": "abc"`` is a line naming the file, not a ValueError at generation."""
    from botkit.options import validate
    from botkit.training import TrainConfig

    problems = []
    try:
        validate(TrainConfig, {k: v for k, v in training.items() if k in TrainConfig.model_fields}, where, ("training",))
    except ConfigError as exc:
        problems += str(exc).splitlines()
    corpus = training.get("corpus", [])
    if not isinstance(corpus, list) or not all(isinstance(p, str) for p in corpus):
        problems.append(f"{where}: training.corpus: expected a list of corpus files")
    return problems


def load_weights_file(model: Any, file: Path, config_path: Path) -> None:
    """Load ``file`` into ``model`` (built from ``config_path``) or say in one line which file is bad.

    Keras warns (several lines each) about every part of another model's file it skips before it
    fails; those warnings are silenced, as the one-line error says the same.
    """
    try:
        with open(file, "rb") as handle:
            signature = handle.read(len(_HDF5_SIGNATURE))
    except FileNotFoundError:
        raise ModelFolderError(f"{file}: missing") from None
    if signature != _HDF5_SIGNATURE:
        raise ModelFolderError(f"{file}: truncated or not a botkit weights file (not HDF5)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_weights(file)
    except OSError:
        raise ModelFolderError(f"{file}: truncated or not a botkit weights file (unreadable HDF5)") from None
    except (ValueError, KeyError, RuntimeError):
        raise ModelFolderError(f"{file}: truncated or not a botkit weights file (its weights do not match the model of {config_path})") from None


def read_vocab(path: Path) -> Vocabulary:
    try:
        return Vocabulary.load(path / VOCAB)
    except VocabError as exc:
        raise ModelFolderError(str(exc)) from None


def load(path: str | Path) -> Saved:
    """A ready-to-run model from a model folder (or ``base``, the shipped model)."""
    path = model_folder.resolve(path)
    config, training = read_config(path)
    vocab = read_vocab(path)
    if len(vocab) != config.vocab_size or len(vocab.labels) != config.num_labels:
        raise ModelFolderError(
            f"{path / VOCAB}: {len(vocab)} tokens / {len(vocab.labels)} labels, but {path / CONFIG} says {config.vocab_size} / {config.num_labels}"
        )
    model = build_model(config)
    load_weights_file(model, path / WEIGHTS, path / CONFIG)
    return Saved(path, model, config, vocab, training)


def save_resume(path: Path, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    """Latest weights, optimizer variables and schedule position, for ``--resume``."""
    folder = path / RESUME
    ensure_folder(folder, "resume folder")
    _save_weights(model, folder / WEIGHTS)
    write_resume_state(folder, optimizer, state)


def write_resume_state(folder: Path, optimizer: Any, state: dict[str, Any]) -> None:
    """The optimizer's variables and the schedule's position: the half of ``resume/`` both model families share."""
    values = [np.asarray(v) for v in optimizer.variables]
    with atomic_output(folder / "optimizer.npz", binary=True, what="model file") as handle:
        np.savez(handle, *values)
    _write_json(folder / "state.json", state)


def read_resume_state(path: Path) -> dict[str, Any]:
    """The schedule position saved in ``path/resume``, or a one-line error when there is none."""
    state_path = path / RESUME / "state.json"
    if not state_path.exists():
        raise ModelFolderError(f"{state_path}: missing; nothing to resume in {path} (train without --resume first)")
    try:
        state = json.loads(state_path.read_text())
    except ValueError:
        raise ModelFolderError(f"{state_path}: truncated or not a botkit resume state") from None
    if not isinstance(state, dict):
        raise ModelFolderError(f"{state_path}: not a botkit resume state")
    return state


def restore_optimizer(folder: Path, optimizer: Any) -> None:
    """Put the variables :func:`write_resume_state` saved back into ``optimizer`` (built for its model)."""
    try:
        with np.load(folder / "optimizer.npz") as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        raise ModelFolderError(f"{folder / 'optimizer.npz'}: missing, truncated or not a botkit optimizer state") from None
    variables = optimizer.variables
    if len(values) != len(variables) or any(tuple(v.shape) != tuple(x.shape) for v, x in zip(variables, values)):
        raise ModelFolderError(f"{folder / 'optimizer.npz'}: does not match the model (was it saved by another botkit version?)")
    for variable, value in zip(variables, values):
        variable.assign(value)


def load_resume(path: Path, model: Any, optimizer: Any) -> dict[str, Any]:
    """Restore what :func:`save_resume` wrote; the optimizer must be built for ``model``."""
    state = read_resume_state(path)
    load_weights_file(model, path / RESUME / WEIGHTS, path / CONFIG)
    restore_optimizer(path / RESUME, optimizer)
    return state


def extend_into(old: Any, new: Any) -> None:
    """Copy ``old``'s weights into ``new``, whose vocabulary or label count may be larger.

    Ids only ever grow at the end (see :class:`Vocabulary`), so each old array goes into the
    leading corner of the new one. New embedding rows and output columns start small (a tenth of a
    fresh initialisation), new output biases at the smallest old bias, and new inputs of an output
    layer (labels the base did not have) at zero: the fine-tuned model first predicts exactly like
    its base on the base's tokens, and unseen tokens start out unlikely instead of random.
    """

    for layer in new.layers:
        try:
            old_layer = old.get_layer(layer.name)
        except ValueError:
            continue  # e.g. the label layers when the base model had no labels
        for target, source in zip(layer.weights, old_layer.weights):
            value, old_value = np.asarray(target) * 0.1, np.asarray(source)
            if value.shape != old_value.shape:
                if isinstance(layer, keras.layers.Dense) and value.ndim == 1:
                    value[:] = old_value.min()
                elif isinstance(layer, keras.layers.Dense):
                    value[old_value.shape[0] :] = 0.0
                value[tuple(slice(0, n) for n in old_value.shape)] = old_value
                old_value = value
            target.assign(old_value)
