"""Generation speed: botkit's batched incremental generator against textgenrnn's ``generate``.

The issue's benchmark: n = 1000 samples of up to 300 characters at temperature 0.5 from the same
default-architecture char model (2 × 128 LSTM, attention head), measured without process start-up
and without the one-off compilation (a first, untimed run compiles the loop). Prints samples/s
and characters/s for each setting and the ratio to textgenrnn.

    python bench/generate_vs_textgenrnn.py --textgenrnn     # side by side on textgenrnn's shipped model
    python bench/generate_vs_textgenrnn.py weights/NAME     # botkit alone on a trained char model
    python bench/generate_vs_textgenrnn.py                  # botkit alone on a random default model

With ``--textgenrnn``, textgenrnn 2.0.0 runs its own ``generate`` in its own environment
(``bench/textgenrnn_env.py``: Keras 2 cannot share a Python with botkit's Keras 3) on the model
shipped in its package, for a few samples (one ``model.predict`` per character makes more take
minutes); botkit imports the same weights (``botkit import-textgenrnn``) and generates n samples.
Without it, the ratio uses textgenrnn's figure measured on this machine, 27-34 characters/s
(/work/shared/research/trainer-notes.md).

Settings compared: XLA on/off, batch size, and the context mode: "window" (the default for
botkit-trained models) conditions on the last W/2..W tokens beyond the trained window W (see
bench/generate_context.py), "carry" on everything, and "sliding" (the default for imported
textgenrnn models, W = 40) on exactly the last W tokens, left-padded, which is textgenrnn's own
distribution, recomputed from scratch for every token as textgenrnn does, but batched.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

TEXTGENRNN_CHARS_PER_S = 30.0  # measured reference on this 2-core CPU (27-34), see the docstring
SHAKESPEARE = Path("/work/shared/data/tinyshakespeare.txt")
HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
# Runs in textgenrnn's environment: its generate, timed, and where its shipped model lies.
_TEXTGENRNN_SIDE = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from textgenrnn_driver import import_textgenrnn
tg = import_textgenrnn()()
began = time.perf_counter()
texts = tg.generate(int(sys.argv[1]), temperature=0.5, max_gen_length=300, return_as_list=True, progress=False)
seconds = time.perf_counter() - began
package = Path(sys.modules["textgenrnn"].__file__).parent
print(json.dumps({"samples": len(texts), "chars": sum(map(len, texts)), "seconds": seconds,
                  "weights": str(package / "textgenrnn_weights.hdf5"), "vocab": str(package / "textgenrnn_vocab.json")}))
"""


def textgenrnn_side(n: int) -> dict[str, object]:
    """textgenrnn's own generate of ``n`` samples in its environment: counts, seconds and its model's files."""
    import sys

    sys.path.insert(0, str(HERE))
    from textgenrnn_env import python

    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([str(python()), "-c", _TEXTGENRNN_SIDE, str(n), str(HERE)], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def imported_generator(result: dict[str, object], jit: bool):  # noqa: ANN201 - Generator
    """botkit's generator over textgenrnn's shipped weights (imported once into bench/out/)."""
    from botkit.generate import Generator
    from botkit.model.textgenrnn_import import import_textgenrnn

    folder = OUT / "textgenrnn-shipped"
    if not (folder / "model.weights.h5").exists():
        import_textgenrnn(Path(str(result["weights"])), Path(str(result["vocab"])), None, folder)
    return Generator.load(folder, jit=jit)


def random_default_generator(jit: bool):  # noqa: ANN201 - Generator
    """The default architecture over tiny Shakespeare's characters, random weights, end token off."""
    import numpy as np

    from botkit.generate import Generator
    from botkit.model.network import ModelConfig, build_model
    from botkit.model.vocab import SEP_ID, Vocabulary

    chars = sorted(set(SHAKESPEARE.read_text(encoding="utf-8"))) if SHAKESPEARE.exists() else list("abcdefghijklmnopqrstuvwxyz .,\n")
    vocab = Vocabulary("char", ["<pad>", "<sep>", "<unk>", *chars])
    config = ModelConfig(vocab_size=len(vocab))
    model = build_model(config)
    bias = np.asarray(model.get_layer("next").bias).copy()
    bias[SEP_ID] = -1e4  # samples run to max_length, like a model trained on one long text
    model.get_layer("next").bias.assign(bias)
    return Generator(model, config, vocab, {"window": 256}, jit=jit)


def measure(generator, n: int, batch_size: int, context: str, repeats: int) -> tuple[float, float, float]:  # noqa: ANN001
    """(seconds to compile and run once, best samples/s, best characters/s) over ``repeats`` timed runs."""
    options = {"temperature": 0.5, "max_length": 300, "batch_size": batch_size, "context": context}
    began = time.perf_counter()
    generator.generate(n, seed=0, **options)  # compiles for these shapes
    first = time.perf_counter() - began
    best_samples = best_chars = 0.0
    for seed in range(1, repeats + 1):
        began = time.perf_counter()
        samples = generator.generate(n, seed=seed, **options)
        seconds = time.perf_counter() - began
        best_samples = max(best_samples, len(samples) / seconds)
        best_chars = max(best_chars, sum(len(s.text) for s in samples) / seconds)
    return first, best_samples, best_chars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="?", type=Path, help="a char model folder (default: random weights, default architecture)")
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, action="append", help="repeatable (default: 1000 and 250)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per setting; the best is reported")
    parser.add_argument(
        "--textgenrnn",
        type=int,
        nargs="?",
        const=3,
        metavar="N",
        help="run textgenrnn's generate for N samples (default 3) on its shipped model, and botkit on the same",
    )
    args = parser.parse_args()
    from botkit.generate import Generator

    print(f"CPU cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} (the CPU is shared: figures are rough)")
    reference = TEXTGENRNN_CHARS_PER_S
    tg = textgenrnn_side(args.textgenrnn) if args.textgenrnn else None
    if tg is not None:
        reference = float(tg["chars"]) / float(tg["seconds"])
        print(
            f"textgenrnn 2.0.0 generate, shipped model: {tg['samples']} samples, {tg['chars']} characters in {tg['seconds']:.1f} s: "
            f"{float(tg['samples']) / float(tg['seconds']):.3f} samples/s, {reference:.1f} characters/s"
        )
    else:
        print(f"textgenrnn: not run (--textgenrnn); its figure on this CPU: {reference:.0f} characters/s (27-34 measured)")
    model = "textgenrnn's shipped model, imported" if tg else args.weights or "random default model"
    print(f"botkit: n = {args.n}, up to 300 characters, temperature 0.5, {model}")
    print(f"{'XLA':>5} {'batch':>6} {'context':>8} {'compile+1st':>12} {'samples/s':>10} {'chars/s':>10} {'× textgenrnn':>13}")
    for jit in (True, False):
        if tg is not None:
            generator = imported_generator(tg, jit)
        else:
            generator = Generator.load(args.weights, jit=jit) if args.weights else random_default_generator(jit)
        for batch_size in args.batch_size or [1000, 250]:
            for context in ("window", "carry", "sliding") if tg else ("window", "carry"):
                first, samples, chars = measure(generator, args.n, batch_size, context, args.repeats)
                print(
                    f"{'on' if jit else 'off':>5} {batch_size:>6} {context:>8} {first:>11.1f}s {samples:>10,.0f} {chars:>10,.0f} {chars / reference:>12,.0f}×",
                    flush=True,
                )


if __name__ == "__main__":
    main()
