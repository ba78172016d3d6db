"""textgenrnn 2.0.0's own virtual environment under ``bench/out/``, and running its driver there.

textgenrnn needs Keras 2 (``tensorflow.keras`` as tf-keras, ``TF_USE_LEGACY_KERAS=1``) while
botkit runs on Keras 3, so the two cannot share a Python: the benches drive textgenrnn through
``textgenrnn_driver.py`` in a child process of this environment and read its one JSON line.

The environment is created on first use and reused after (a marker file records what was
installed; a changed requirement list reinstalls; see ``peer_env.py``). Set-up takes a minute or
two from a local package mirror.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peer_env import HERE, ensure_venv, run_json

VENV = HERE / "out" / "textgenrnn-venv"
DRIVER = HERE / "textgenrnn_driver.py"
# textgenrnn 2.0.0 pins nothing; its own dependencies (h5py, scikit-learn, tqdm) come with it.
REQUIREMENTS = ["textgenrnn==2.0.0", "tensorflow==2.21.*", "tf-keras==2.21.*"]

__all__ = ["DRIVER", "HERE", "REQUIREMENTS", "VENV", "python", "run_driver"]


def python() -> Path:
    """The environment's interpreter, installing the environment first when it is missing or stale."""
    return ensure_venv(VENV, REQUIREMENTS, what="textgenrnn")


def run_driver(command: str, *args: str | Path, cwd: Path) -> dict[str, Any]:
    """Run one ``textgenrnn_driver.py`` command in the environment; its JSON result."""
    return run_json(python(), DRIVER, command, *args, cwd=cwd, env={"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"})
