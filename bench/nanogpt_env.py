"""nanoGPT's own virtual environment and checkout under ``bench/out/``, and running its driver there.

nanoGPT is PyTorch, botkit is Keras 3 on TensorFlow: the benches drive nanoGPT through
``nanogpt_driver.py`` in a child process of this environment and read its one JSON line. Nothing
of nanoGPT is imported by botkit or by the bench's own Python.

* The environment, ``bench/out/nanogpt-venv``: ``python3.11 -m venv`` with ``torch==2.13.0``
  (a CPU build; pip finds it in the machine's local wheel folder, so no multi-GB CUDA build is
  downloaded), ``numpy`` and ``requests`` (imported, never called, by nanoGPT's
  ``data/shakespeare_char/prepare.py`` once its ``input.txt`` is there). Created on first use,
  reused after (see ``peer_env.py``).
* The checkout: ``--nanogpt PATH`` (a clone of karpathy/nanoGPT you already have), else
  ``bench/out/nanoGPT``, cloned on first use from the local mirror of the repository when this
  machine has one. No file of the checkout is written or changed: the data, the logs and the
  checkpoints go to the bench's work folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from peer_env import HERE, ensure_venv, run_json

VENV = HERE / "out" / "nanogpt-venv"
CHECKOUT = HERE / "out" / "nanoGPT"
MIRROR = Path("/work/.mirror/karpathy+nanoGPT/repo")
UPSTREAM = "https://github.com/karpathy/nanoGPT"
DRIVER = HERE / "nanogpt_driver.py"
REQUIREMENTS = ["torch==2.13.0", "numpy", "requests"]
#: What the driver runs or reads in a checkout.
NEEDED = ("train.py", "model.py", "configurator.py", "config/train_shakespeare_char.py", "data/shakespeare_char/prepare.py")


def python() -> Path:
    """The environment's interpreter, installing the environment first when it is missing or stale."""
    return ensure_venv(VENV, REQUIREMENTS, base_python=shutil.which("python3.11") or sys.executable, what="nanoGPT")


def checkout(path: Path | None = None) -> Path:
    """A nanoGPT checkout: ``path`` when given, else ``bench/out/nanoGPT`` (cloned from the local mirror on first use)."""
    where = (path or CHECKOUT).resolve()
    if path is None and not where.exists():
        if not MIRROR.exists():
            raise SystemExit(f"no nanoGPT checkout: clone {UPSTREAM} and pass --nanogpt PATH (or clone it into {CHECKOUT})")
        print(f"cloning nanoGPT into {where}", file=sys.stderr, flush=True)
        subprocess.run(["git", "clone", "-q", str(MIRROR), str(where)], check=True)
    missing = [name for name in NEEDED if not (where / name).exists()]
    if missing:
        raise SystemExit(f"{where}: not a nanoGPT checkout (missing {', '.join(missing)})")
    return where


def revision(where: Path) -> str:
    """The checkout's commit, when it is a git clone."""
    done = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def run_driver(command: str, *args: str | Path, cwd: Path) -> dict[str, Any]:
    """Run one ``nanogpt_driver.py`` command in the environment; its JSON result."""
    return run_json(python(), DRIVER, command, *args, cwd=cwd)
