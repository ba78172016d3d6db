"""Shared bits of the peer benches: a peer's own virtual environment, its JSON driver, the machine.

A peer (textgenrnn, nanoGPT) cannot share botkit's Python, so each runs in its own environment
under ``bench/out/``, created on first use and reused after (a marker file records what was
installed; a changed requirement list reinstalls), and is driven by a script of its own in a child
process that prints one JSON line as its result.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
_MARKER = ".bench-requirements.json"


def ensure_venv(venv: Path, requirements: list[str], *, base_python: str = sys.executable, what: str = "a peer") -> Path:
    """The environment's interpreter, installing the environment first when it is missing or stale."""
    interpreter, marker = venv / "bin" / "python", venv / _MARKER
    if marker.exists() and json.loads(marker.read_text()) == requirements and interpreter.exists():
        return interpreter
    print(f"setting up {what}'s environment in {venv} ({', '.join(requirements)})", file=sys.stderr, flush=True)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(interpreter), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements], check=True)
    marker.write_text(json.dumps(requirements))
    return interpreter


def run_json(interpreter: Path, script: Path, command: str, *args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``script command args`` with ``interpreter`` (this environment's variables left out); its last stdout line, as JSON."""
    child_env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    child_env.update(env or {})
    done = subprocess.run([str(interpreter), str(script), command, *map(str, args)], capture_output=True, text=True, env=child_env, cwd=cwd)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"{script.name} '{command}' failed (exit {done.returncode}):\n{tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 ``n × n`` matrix product in numpy (this environment's BLAS), GFLOP/s."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: threads and pages
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - began)
    return 2 * n**3 / best / 1e9


def machine() -> dict[str, Any]:
    """What the figures depend on: CPU model, cores, vector extensions, a measured matrix-product rate, the load."""
    model, flags = platform.processor() or "?", set()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
            elif key.strip() == "Flags":
                flags = set(value.split())
    except (OSError, subprocess.CalledProcessError):
        pass
    return {
        "cpu": model, "cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
        "flags": {flag: flag in flags for flag in ("avx2", "fma", "avx512f")},
        "numpy_matmul_gflops": round(matmul_gflops(), 1), "python": platform.python_version(), "load_average": round(os.getloadavg()[0], 2),
    }  # fmt: skip


def machine_line(m: dict[str, Any]) -> str:
    flags = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in m["flags"].items())
    return f"{m['cpu']}, {m['cpus']} cores ({m['usable_cpus']} usable); {flags}; numpy float32 matmul 2048³: {m['numpy_matmul_gflops']:.0f} GFLOP/s; load {m['load_average']:.1f}"
