"""textgenrnn 2.0.0's own virtual environment under ``bench/out/``, and running its driver there.

textgenrnn needs Keras 2 (``tensorflow.keras`` as tf-keras, ``TF_USE_LEGACY_KERAS=1``) while
botkit runs on Keras 3, so the two cannot share a Python: the benches drive textgenrnn through
``textgenrnn_driver.py`` in a child process of this environment and read its one JSON line.

The environment is created on first use and reused after (a marker file records what was
installed; a changed requirement list reinstalls). Set-up takes a minute or two from a local
package mirror.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE / "out" / "textgenrnn-venv"
DRIVER = HERE / "textgenrnn_driver.py"
# textgenrnn 2.0.0 pins nothing; its own dependencies (h5py, scikit-learn, tqdm) come with it.
REQUIREMENTS = ["textgenrnn==2.0.0", "tensorflow==2.21.*", "tf-keras==2.21.*"]
_MARKER = VENV / ".bench-requirements.json"


def python() -> Path:
    """The environment's interpreter, installing the environment first when it is missing or stale."""
    interpreter = VENV / "bin" / "python"
    if _MARKER.exists() and json.loads(_MARKER.read_text()) == REQUIREMENTS and interpreter.exists():
        return interpreter
    print(f"setting up textgenrnn's environment in {VENV} ({', '.join(REQUIREMENTS)})", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(interpreter), "-m", "pip", "install", "-q", "--disable-pip-version-check", *REQUIREMENTS], check=True)
    _MARKER.write_text(json.dumps(REQUIREMENTS))
    return interpreter


def run_driver(command: str, *args: str | Path, cwd: Path) -> dict[str, Any]:
    """Run one ``textgenrnn_driver.py`` command in the environment; its JSON result."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([str(python()), str(DRIVER), command, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"textgenrnn driver '{command}' failed (exit {done.returncode}):\n{tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])
