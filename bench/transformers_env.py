"""Hugging Face ``transformers`` + PyTorch (CPU) in their own virtual environment under ``bench/out/``.

The peer of ``botkit train --from smollm2`` is what a user would pick instead: ``transformers``
fine-tuning the same Hugging Face-format folder with PyTorch. botkit runs on Keras 3 and
TensorFlow, so the two do not share a Python: ``pretrained_titles.py`` drives the peer through
``transformers_driver.py`` in a child process of this environment and reads its one JSON line.
Nothing of PyTorch or ``transformers`` is imported by botkit or by the bench's own Python.

* The environment, ``bench/out/transformers-venv``: ``python3.11 -m venv`` with
  ``torch==2.13.0`` (a CPU build; pip finds it in the machine's local wheel folder, so no
  multi-GB CUDA build is downloaded), ``transformers``, ``safetensors`` and ``tokenizers``.
  Created on first use, reused after (see ``peer_env.py``); :func:`python` checks that
  ``import torch, transformers`` works in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from peer_env import HERE, ensure_venv

VENV = HERE / "out" / "transformers-venv"
DRIVER = HERE / "transformers_driver.py"
REQUIREMENTS = ["torch==2.13.0", "transformers", "safetensors", "tokenizers"]
#: The peer's threads: one per core of the 2-core machine the figures were taken on, as TensorFlow's defaults use.
THREADS = 2

__all__ = ["DRIVER", "REQUIREMENTS", "THREADS", "VENV", "python", "versions"]

_checked: dict[Path, dict[str, str]] = {}


def python() -> Path:
    """The environment's interpreter, installing the environment first when it is missing or stale,
    and checking once that ``import torch, transformers`` works there."""
    interpreter = ensure_venv(VENV, REQUIREMENTS, base_python=shutil.which("python3.11") or sys.executable, what="transformers")
    versions(interpreter)
    return interpreter


def versions(interpreter: Path | None = None) -> dict[str, str]:
    """The peer's package versions (``torch``, ``transformers``), read by importing them there."""
    interpreter = interpreter or python()
    if interpreter not in _checked:
        code = "import json, torch, transformers, tokenizers, safetensors; print(json.dumps({m.__name__: m.__version__ for m in (torch, transformers, tokenizers, safetensors)}))"
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
        done = subprocess.run([str(interpreter), "-c", code], capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SystemExit(f"{VENV}: 'import torch, transformers' fails there (delete the folder to reinstall):\n{done.stderr.strip()[-1500:]}")
        import json

        _checked[interpreter] = json.loads(done.stdout.strip().splitlines()[-1])
    return _checked[interpreter]


def driver_command(command: str, *args: str | Path) -> list[str]:
    """The argv that runs one ``transformers_driver.py`` command in the environment."""
    return [str(python()), str(DRIVER), command, *map(str, args)]


def driver_env() -> dict[str, str]:
    """The child's environment: this one's, less the variables of botkit's venv, with the thread count fixed."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env |= {
        "OMP_NUM_THREADS": str(THREADS),
        "MKL_NUM_THREADS": str(THREADS),
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    return env


def run(command: str, *args: str | Path, cwd: Path) -> dict[str, Any]:
    """Run one driver command; its last stdout line, as JSON."""
    import json

    done = subprocess.run(driver_command(command, *args), capture_output=True, text=True, env=driver_env(), cwd=cwd)
    if done.returncode != 0:
        raise SystemExit(f"transformers_driver.py '{command}' failed (exit {done.returncode}):\n{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(python(), versions())
