"""Batched incremental generation on models with set (random) weights: exactness and the sampling options.

The central check: the incremental step, which carries LSTM states and running attention sums from
token to token, gives the same next-token distribution as the full Keras model run over the whole
context, for char, word and labelled models, both heads and both outputs. Tolerance: max abs
difference of probabilities < 1e-5 in float32 (measured: about 1e-7).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from botkit.cli import main
from botkit.errors import ConfigError
from botkit.generate import Generator, generate
from botkit.generate.step import StepNetwork
from botkit.model import saving
from botkit.model.network import ModelConfig, build_model, model_inputs
from botkit.model.vocab import PAD_ID, SEP_ID, UNK_ID, Vocabulary
from botkit.training import DEFAULT_WINDOW, TrainConfig, trained_window

TOLERANCE = 1e-5
CHARS = Vocabulary("char", ["<pad>", "<sep>", "<unk>", *"abcdefghij .,"])
WORDS = Vocabulary("word", ["<pad>", "<sep>", "<unk>", "<cap>", "<upper>", *"the a cat dog sat on mat , . and".split()])
LABELLED = Vocabulary("char", CHARS.tokens, ["", "ann", "bob"])


def random_model(vocab: Vocabulary, head: str = "attention+last", sep_bias: float = -3.0, seed: int = 0, layers: int = 2):  # noqa: ANN201
    """A small model with random weights of a realistic scale; ``sep_bias`` sets how soon texts end."""
    config = ModelConfig(vocab_size=len(vocab), num_labels=len(vocab.labels), embedding_size=8, rnn_layers=layers, rnn_size=16, head=head)
    model = build_model(config)
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(0, 0.6, variable.shape).astype(np.float32))
    for name in ("next", "aux") if config.labelled else ("next",):
        bias = np.asarray(model.get_layer(name).bias).copy()
        bias[SEP_ID] = sep_bias
        model.get_layer(name).bias.assign(bias)
    return model, config


def generator(vocab: Vocabulary, jit: bool = False, **kwargs) -> Generator:  # noqa: ANN003
    """A generator over :func:`random_model`; without XLA unless asked (compiling with XLA takes seconds)."""
    model, config = random_model(vocab, **kwargs)
    return Generator(model, config, vocab, {"window": 64}, jit=jit)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize(
    ("vocab", "head", "output"),
    [
        (CHARS, "attention+last", "next"),
        (CHARS, "attention", "next"),
        (WORDS, "attention+last", "next"),
        (WORDS, "attention", "next"),
        (LABELLED, "attention+last", "next"),
        (LABELLED, "attention+last", "aux"),
        (LABELLED, "attention", "next"),
        (LABELLED, "attention", "aux"),
    ],
    ids=["char-last", "char-attention", "word-last", "word-attention", "label-last-next", "label-last-aux", "label-attention-next", "label-attention-aux"],
)
def test_incremental_step_equals_the_full_model(vocab: Vocabulary, head: str, output: str, jit: bool) -> None:
    import tensorflow as tf

    model, config = random_model(vocab, head=head)
    rng = np.random.default_rng(1)
    ids = rng.integers(1, len(vocab), size=(3, 80)).astype(np.int32)
    ids[:, 0] = SEP_ID
    labels = np.repeat(np.array([[0], [1], [2]]) % config.num_labels, 80, axis=1).astype(np.int32)
    full = tf.nn.softmax(model(model_inputs(config, ids, labels), training=False)[output]).numpy()
    network = StepNetwork(model, config)
    step = tf.function(lambda t, label, s: network.step(t, label, s, output), jit_compile=jit, autograph=False)
    state, worst = network.initial_state(3), 0.0
    for t in range(ids.shape[1]):
        logits, state = step(tf.constant(ids[:, t]), tf.constant(labels[:, t]), state)
        worst = max(worst, float(np.abs(tf.nn.softmax(logits).numpy() - full[:, t]).max()))
    assert worst < TOLERANCE


def sequence_logprobs(model, config: ModelConfig, ids: list[int], label: int = 0, output: str = "next") -> np.ndarray:  # noqa: ANN001
    """log p(ids[t+1] | ids[:t+1]) under the full model, for every t."""
    import tensorflow as tf

    x = np.array([ids], np.int32)
    logits = model(model_inputs(config, x, np.full_like(x, label)), training=False)[output]
    logp = tf.nn.log_softmax(logits).numpy()[0]
    return logp[np.arange(len(ids) - 1), ids[1:]]


# Char models only: a char sample re-encodes to exactly the ids that were sampled (a word sample's
# casing tokens do not always survive detokenisation), and the loop does not depend on the level.
@pytest.mark.parametrize(
    ("vocab", "label", "output", "jit"),
    [(CHARS, None, "next", True), (CHARS, None, "next", False), (LABELLED, "bob", "next", False), (LABELLED, None, "aux", False)],
)
def test_score_is_the_full_models_mean_log_probability(vocab: Vocabulary, label: str | None, output: str, jit: bool) -> None:
    model, config = random_model(vocab, sep_bias=0.5)
    gen = Generator(model, config, vocab, {"window": 64}, jit=jit)
    samples = gen.generate(12, temperature=0.7, max_length=30, label=label, seed=3)
    ended = 0
    for sample in samples:
        ids = [SEP_ID, *vocab.encode(sample.text).tolist()]
        if len(ids) - 1 < 30:
            ids.append(SEP_ID)  # the sample ended: its closing separator is scored too
            ended += 1
        expected = sequence_logprobs(model, config, ids, vocab.label_id(label), output).mean()
        assert sample.score == pytest.approx(expected, abs=1e-4)
        assert sample.label == label and sample.temperature == pytest.approx(0.7)
    assert ended > 0


@pytest.mark.parametrize("jit", [True, False])
def test_same_seed_same_samples_other_seed_other_samples(jit: bool) -> None:
    gen = generator(CHARS, jit=jit)
    first = gen.generate(20, max_length=40, seed=7)
    assert first == gen.generate(20, max_length=40, seed=7)
    assert len({s.text for s in first}) > 15
    other = gen.generate(20, max_length=40, seed=8)
    assert sum(a.text != b.text for a, b in zip(first, other)) > 15
    # batches are seeded apart: a run in batches of 5 does not repeat itself every 5 samples
    batched = gen.generate(20, max_length=40, seed=7, batch_size=5)
    assert len({s.text for s in batched}) > 15 and batched == gen.generate(20, max_length=40, seed=7, batch_size=5)


def allowed_logits(model, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """The full model's logits over [separator, text] for equally long texts, with the tokens
    generation never samples made impossible; and the ids that were sampled, (rows, T)."""
    ids = np.array([[SEP_ID, *CHARS.encode(text).tolist()] for text in texts], np.int32)
    logits = np.asarray(model(ids, training=False)["next"])[:, :-1].copy()
    logits[:, :, [PAD_ID, UNK_ID]] = -np.inf
    logits[:, 0, SEP_ID] = -np.inf  # the first token may not end the text
    return logits, ids[:, 1:]


def test_temperature_list_cycles_per_token() -> None:
    model, config = random_model(CHARS, sep_bias=-1e4)  # never ends, even at temperature 100
    gen = Generator(model, config, CHARS, {"window": 64}, jit=False)
    samples = gen.generate(8, temperature=[0.0, 100.0], max_length=41, seed=1)
    assert all(s.temperature is None and len(s.text) == 41 for s in samples)  # a cycle has no single temperature
    logits, sampled = allowed_logits(model, [s.text for s in samples])
    greedy = logits.argmax(axis=2) == sampled
    assert greedy[:, 0::2].all()  # tokens 0, 2, 4, ...: temperature 0
    assert greedy[:, 1::2].sum() < greedy[:, 0::2].sum() / 3  # temperature 100 over 13 tokens: close to uniform


@pytest.mark.parametrize("vocab", [40, 3000])  # all sorted; a transformer-sized vocabulary's partial sort, and its fallback
@pytest.mark.parametrize("scale", [(0.3,), (3.0,), (30.0,), (30.0, 0.3, 30.0)])  # flat (nucleus wider than the candidates), middling, peaked, rows of both
def test_the_nucleus_is_the_smallest_set_of_most_likely_tokens_holding_top_p(vocab: int, scale: tuple[float, ...]) -> None:
    import tensorflow as tf

    from botkit.generate.sampling import Truncation, truncate

    rng = np.random.default_rng(int(sum(scale) * 10) + vocab)
    logits = (rng.standard_normal((16, vocab)) * np.resize(scale, 16)[:, None]).astype(np.float32)
    temperature = np.full((16, 1), 0.7, np.float32)
    kept = np.isfinite(truncate(tf.constant(logits), tf.constant(temperature), Truncation(top_p=0.9)).numpy())
    for row, mask in zip(logits / 0.7, kept):
        probs = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
        order = np.argsort(-probs)
        need = int(np.searchsorted(np.cumsum(probs[order]), 0.9) + 1)  # the reference: a full sort in float64
        assert abs(int(mask.sum()) - need) <= 1  # one token either way where the mass meets 0.9 within float32 rounding
        assert mask[order[: int(mask.sum())]].all()  # and they are the most likely ones


def test_top_k_one_and_tiny_top_p_are_greedy() -> None:
    gen = generator(CHARS)
    greedy = [s.text for s in gen.generate(6, temperature=0.0, max_length=50)]
    assert [s.text for s in gen.generate(6, temperature=1.5, top_k=1, max_length=50, seed=4)] == greedy
    assert [s.text for s in gen.generate(6, temperature=1.5, top_p=1e-4, max_length=50, seed=5)] == greedy
    wide = {s.text for s in gen.generate(20, temperature=1.5, top_k=5, max_length=50, seed=4)}
    assert len(wide) > 10


def test_top_k_keeps_only_the_k_likeliest_tokens() -> None:
    model, config = random_model(CHARS, sep_bias=-1e4)
    gen = Generator(model, config, CHARS, {"window": 64}, jit=False)
    logits, sampled = allowed_logits(model, [s.text for s in gen.generate(10, temperature=2.0, top_k=2, max_length=20, seed=2)])
    chosen = np.take_along_axis(logits, sampled[:, :, None], axis=2)
    assert ((logits > chosen).sum(axis=2) < 2).all()  # never below the second likeliest
    assert ((logits > chosen).sum(axis=2) == 1).any()  # and not always the likeliest


def test_generation_stops_at_the_end_of_a_document_and_never_returns_empty_text() -> None:
    ending = generator(CHARS, sep_bias=4.0).generate(50, max_length=60, seed=0)
    assert all(len(s.text) >= 1 for s in ending)
    assert np.mean([len(s.text) for s in ending]) < 10
    endless = generator(CHARS, sep_bias=-30.0).generate(5, max_length=60, seed=0)
    assert [len(s.text) for s in endless] == [60] * 5


def test_prefix_starts_every_sample_and_counts_in_max_length() -> None:
    gen = generator(CHARS, sep_bias=-30.0)
    samples = gen.generate(5, prefix="cab", max_length=20)
    assert all(s.text.startswith("cab") and len(s.text) == 20 for s in samples)
    with pytest.raises(ConfigError, match="max-length"):
        gen.generate(1, prefix="abcdef", max_length=4)


def test_word_level_samples_are_detokenised() -> None:
    gen = generator(WORDS, sep_bias=-30.0)
    samples = gen.generate(10, prefix="The cat", max_length=12, temperature=0.8)
    for sample in samples:
        assert sample.text.startswith("The cat") and "<cap>" not in sample.text and "  " not in sample.text
        assert not any(p in sample.text for p in (" ,", " ."))
    assert Generator(*random_model(WORDS), WORDS).default_max_length() == 88  # ~300 characters


def test_the_context_window_defaults_to_trainings_one_default() -> None:
    """A model whose training config does not record its window gets ``--window``'s default, the one declaration."""
    model, config = random_model(CHARS)
    assert Generator(model, config, CHARS).window == trained_window({}) == TrainConfig().window == DEFAULT_WINDOW
    assert Generator(model, config, CHARS, {"window": 64}).window == 64


def test_labels_are_spread_over_the_samples_and_unknown_labels_are_named() -> None:
    gen = generator(LABELLED)
    samples = gen.generate(7, label=["ann", "bob", None], max_length=10, batch_size=3)
    assert [s.label for s in samples] == ["ann", "bob", None] * 2 + ["ann"]
    with pytest.raises(ConfigError, match=r"'carol' is not one the model was trained on \(known: ann, bob\)"):
        gen.generate(1, label="carol")


def test_mixed_batch_uses_each_rows_output() -> None:
    """A batch mixing labelled and label-free rows gives each row what a batch of its own kind gives."""
    gen = generator(LABELLED)
    mixed = gen.generate(4, label=["bob", None], max_length=25, temperature=0.0)
    assert mixed[0].text == gen.generate(1, label="bob", max_length=25, temperature=0.0)[0].text
    assert mixed[1].text == gen.generate(1, label=None, max_length=25, temperature=0.0)[0].text


def test_write_jsonl_and_txt(tmp_path: Path) -> None:
    gen = generator(CHARS, sep_bias=1.0)
    assert gen.write(tmp_path / "out.jsonl", 6, temperature=0.5, max_length=30) == 6
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(set(r) >= {"text", "score", "temperature", "label"} for r in rows)
    assert all(isinstance(r["text"], str) and r["score"] < 0 and math.isfinite(r["score"]) and r["temperature"] == 0.5 for r in rows)
    newline = Vocabulary("char", ["<pad>", "<sep>", "<unk>", "\n", "a"])
    Generator(*random_model(newline, sep_bias=-30.0), newline, jit=False).write(tmp_path / "out.txt", 3, max_length=40)
    lines = (tmp_path / "out.txt").read_text().splitlines()
    assert len(lines) == 3 and all(len(line) >= 40 and "\\n" in line for line in lines)  # escaped like corpora
    with pytest.raises(ConfigError, match="out.csv"):
        gen.write(tmp_path / "out.csv", 1)


def test_load_from_a_weights_folder_and_module_level_generate(tmp_path: Path) -> None:
    model, config = random_model(CHARS)
    saving.save(tmp_path / "m", model, config, CHARS, {"window": 64})
    samples = generate(tmp_path / "m", 3, max_length=15, seed=2)
    assert samples == Generator(model, config, CHARS, jit=True).generate(3, max_length=15, seed=2)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: None, "no such model folder"),
        (lambda p: (p.mkdir(), (p / "config.json").write_text("{truncated")), "config.json: truncated or not a botkit config"),
    ],
)
def test_missing_or_corrupt_weights_get_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], damage, message: str) -> None:  # noqa: ANN001
    damage(tmp_path / "m")
    assert main(["generate", str(tmp_path / "m"), "-n", "2"]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_unknown_label_lists_the_trained_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, config = random_model(LABELLED)
    saving.save(tmp_path / "m", model, config, LABELLED, {"window": 64})
    assert main(["generate", str(tmp_path / "m"), "--label", "carol"]) == 1
    err = capsys.readouterr().err
    assert "'carol' is not one the model was trained on (known: ann, bob)" in err and err.count("\n") == 1


def context_start(i: int, window: int) -> int:
    """Where the context of the prediction after token i begins when generation keeps to ``window``."""
    half = window // 2
    return 0 if i < window else window + half * ((i - window) // half) - half


@pytest.mark.parametrize("jit", [False, True])
def test_window_context_predicts_from_the_trained_window_only(jit: bool) -> None:
    """Beyond the trained window, every prediction is the full model's over the last W/2..W tokens."""
    import tensorflow as tf

    model, config = random_model(CHARS)
    gen = Generator(model, config, CHARS, {"window": 16}, jit=jit)
    rng = np.random.default_rng(0)
    ids = rng.integers(3, len(CHARS), size=(2, 50)).astype(np.int32)
    scored = gen.score(ids)
    carried = gen.score(ids, context="carry")
    tokens = np.concatenate([np.full((2, 1), SEP_ID, np.int32), ids], axis=1)  # token 0 is the separator
    positions = np.arange(ids.shape[1])
    starts = np.array([context_start(i, 16) for i in positions])
    for start in np.unique(starts):  # one full-model pass per context start covers all its predictions
        covered = positions[starts == start]
        logp = tf.nn.log_softmax(model(tokens[:, start : covered[-1] + 1], training=False)["next"]).numpy()
        expected = logp[:, covered - start][np.arange(2)[:, None], np.arange(len(covered))[None, :], ids[:, covered]]
        assert scored[:, covered] == pytest.approx(expected, abs=1e-4)
        if start == 0:
            assert carried[:, covered] == pytest.approx(expected, abs=1e-4)
    assert np.abs(scored[:, 16:] - carried[:, 16:]).max() > 1e-3  # beyond the window the two differ


def test_zero_samples_and_bad_options_are_clear() -> None:
    gen = generator(CHARS)
    assert gen.generate(0) == []
    for options, message in [
        ({"temperature": -1.0}, "temperature must be"),
        ({"top_k": 0}, "top-k must be at least 1"),
        ({"top_p": 1.5}, r"top-p must be in \(0, 1\]"),
        ({"batch_size": 0}, "--batch-size at least 1"),
        ({"context": "forever"}, "context must be 'window', 'carry' or 'sliding'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            gen.generate(1, **options)


def windowed_logprobs(model, ids: list[int], window: int) -> np.ndarray:  # noqa: ANN001
    """log p(ids[t + 1] | the context generation keeps to ``window``) under the full model, for every t."""
    import tensorflow as tf

    positions = np.arange(len(ids) - 1)
    starts = np.array([context_start(i, window) for i in positions])
    out = np.zeros(len(positions))
    for start in np.unique(starts):  # one pass per context start
        covered = positions[starts == start]
        logp = tf.nn.log_softmax(model(np.array([ids[start : covered[-1] + 1]], np.int32), training=False)["next"][0]).numpy()
        out[covered] = logp[covered - start, np.array(ids)[covered + 1]]
    return out


@pytest.mark.parametrize("jit", [False, True])
def test_rows_refill_and_keep_their_own_window_phase(jit: bool) -> None:
    """Rows start new samples as others end (3 rows, 9 samples of different lengths); each sample's
    score is still its exact log-probability, with the window restarts at its own positions."""
    model, config = random_model(CHARS, sep_bias=1.0)
    gen = Generator(model, config, CHARS, {"window": 8}, jit=jit)
    samples = gen.generate(9, max_length=30, batch_size=3, temperature=0.8, seed=4)
    lengths = {len(s.text) for s in samples}
    assert len(lengths) > 3 and max(lengths) > 12  # samples end at different times, some beyond the window
    for sample in samples:
        ids = [SEP_ID, *CHARS.encode(sample.text).tolist()]
        if len(ids) - 1 < 30:
            ids.append(SEP_ID)
        assert sample.score == pytest.approx(windowed_logprobs(model, ids, 8).mean(), abs=1e-4)


@pytest.mark.parametrize("jit", [False, True])
def test_sliding_context_predicts_from_the_last_window_left_padded(jit: bool) -> None:
    """textgenrnn's way (the default for imported textgenrnn models): every prediction from exactly
    the last W tokens, padding before the separator."""
    import tensorflow as tf

    model, config = random_model(CHARS)
    gen = Generator(model, config, CHARS, {"window": 8, "imported_from": "textgenrnn_weights.hdf5"}, jit=jit)
    assert gen.default_context() == "sliding"
    ids = np.random.default_rng(0).integers(3, len(CHARS), size=(2, 20)).astype(np.int32)
    padded = np.concatenate([np.full((2, 7), PAD_ID, np.int32), np.full((2, 1), SEP_ID, np.int32), ids], axis=1)
    windows = np.stack([padded[:, i : i + 8] for i in range(20)], axis=1).reshape(40, 8)  # the window before ids[:, i]
    logp = tf.nn.log_softmax(model(windows, training=False)["next"][:, -1]).numpy().reshape(2, 20, -1)
    expected = np.take_along_axis(logp, ids[:, :, None], axis=2)[:, :, 0]
    assert gen.score(ids) == pytest.approx(expected, abs=1e-4)
    samples = gen.generate(6, max_length=20, batch_size=2, seed=1)  # rows refill: their windows restart padded
    for sample in samples:
        row = [SEP_ID, *CHARS.encode(sample.text).tolist()] + ([SEP_ID] if len(sample.text) < 20 else [])
        padded_row = [PAD_ID] * 7 + row
        wins = np.array([padded_row[i : i + 8] for i in range(len(row) - 1)], np.int32)
        lp = tf.nn.log_softmax(model(wins, training=False)["next"][:, -1]).numpy()
        assert sample.score == pytest.approx(lp[np.arange(len(row) - 1), row[1:]].mean(), abs=1e-4)
