"""The base model shipped in weights/base: generate right after install, fine-tune from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def botkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "botkit", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def test_generate_from_the_shipped_base_model_by_name(tmp_path: Path) -> None:
    result = botkit("generate", "base", "-n", "4", "-t", "0.5", "--seed", "3", "--filters", "none", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    samples = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(samples) == 4
    assert sum(len(s) for s in samples) > 40  # real text, not empty strings


def test_fine_tune_from_base_extends_its_vocabulary(tmp_path: Path) -> None:
    (tmp_path / "new.txt").write_text("Привет, мир. Hello world.\n" * 40, encoding="utf-8")
    trained = botkit("train", "new.txt", "--single-text", "--from", "base", "-o", "tuned", "--epochs", "1", "--sample-every", "0", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    base_tokens = json.loads((Path(__file__).parent.parent / "weights" / "base" / "vocab.json").read_text(encoding="utf-8"))["tokens"]
    tuned_tokens = json.loads((tmp_path / "tuned" / "vocab.json").read_text(encoding="utf-8"))["tokens"]
    assert tuned_tokens[: len(base_tokens)] == base_tokens  # old ids kept
    assert "П" not in base_tokens and "П" in tuned_tokens  # new characters added, no crash
    generated = botkit("generate", "tuned", "-n", "2", "--seed", "1", "--filters", "none", cwd=tmp_path)
    assert generated.returncode == 0, generated.stderr
