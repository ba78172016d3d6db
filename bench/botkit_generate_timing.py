"""Batched generation speed of a botkit model folder, in botkit's own environment; one JSON line.

    .venv/bin/python bench/botkit_generate_timing.py MODEL T0 [--rows 32] [--new 64] [--many 256] [--many-rows N]

``T0`` is the parent's ``time.time()`` when it started this process: ``first_sample_seconds`` runs
from there (interpreter start, imports, ``botkit.generate.load(MODEL)``, the graph build of the
sampling step) to the end of the first ``generate(ROWS, temperature=0.8, top_p=0.95,
max_length=NEW, seed=1)``; the same call again (seed 2) gives the steady rate of one batch, and
``generate(MANY, ...)`` the rate of a long run with botkit's default row count (``--many-rows``
sets another), where a row whose sample ended takes the next one (``many_*``). Sampled tokens are counted exactly: at every step of the
generator's loop, the rows not yet ended (each row's end marker is counted, as for the
transformers peer); row-positions are the rows each step runs, ended or not.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("t0", type=float)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--many", type=int, default=256)
    parser.add_argument("--many-rows", type=int, help="rows of the long run (default: the generator's own default, what a user gets)")
    args = parser.parse_args()
    import tensorflow as tf

    from botkit.generate import load

    began = time.monotonic()
    generator: Any = load(args.model)
    load_seconds = time.monotonic() - began
    counts = {"steps": 0, "positions": 0, "tokens": 0}
    if hasattr(generator, "_step"):  # a transformer: count the rows still sampling at every step
        build = generator._step

        def counting(truncation: Any) -> Any:
            step = build(truncation)

            def run(token: Any, forced: Any, cache: Any, i: Any, seen: Any, done: Any, *rest: Any) -> Any:
                counts["steps"] += 1
                counts["rows"] = max(counts.get("rows", 0), int(tf.size(done)))
                counts["positions"] += int(tf.size(done))
                counts["tokens"] += int(tf.size(done)) - int(tf.reduce_sum(tf.cast(done, tf.int32)))
                return step(token, forced, cache, i, seen, done, *rest)

            return run

        generator._step = counting
    options = {"temperature": 0.8, "top_p": 0.95, "max_length": args.new, "batch_size": args.rows}
    began = time.monotonic()
    generator.generate(args.rows, seed=1, **options)
    first_call = time.monotonic() - began
    first_sample = time.time() - args.t0
    first = dict(counts)
    counts.update(steps=0, positions=0, tokens=0)
    began = time.monotonic()
    samples = generator.generate(args.rows, seed=2, **options)
    steady = time.monotonic() - began
    one = dict(counts)
    counts.update(steps=0, positions=0, tokens=0)
    began = time.monotonic()
    counts["rows"] = 0
    generator.generate(args.many, seed=3, **{**options, "batch_size": args.many_rows} if args.many_rows else {k: v for k, v in options.items() if k != "batch_size"})
    many = time.monotonic() - began
    print(json.dumps({
        "first_sample_seconds": round(first_sample, 2), "first_call_seconds": round(first_call, 2), "load_seconds": round(load_seconds, 1),
        "first_call_tokens": first["tokens"], "first_call_steps": first["steps"], "rows": args.rows, "max_new_tokens": args.new,
        "steady_seconds": round(steady, 3), "steady_tokens": one["tokens"], "steady_positions": one["steps"], "steady_row_positions": one["positions"],
        "steady_tokens_per_second": one["tokens"] / steady, "steady_row_positions_per_second": one["positions"] / steady,
        "many": args.many, "many_rows": counts.get("rows"), "many_seconds": round(many, 3), "many_tokens": counts["tokens"], "many_steps": counts["steps"],
        "many_tokens_per_second": counts["tokens"] / many, "many_row_positions_per_second": counts["positions"] / many,
        "samples": [s.text for s in samples[:5]], "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }, ensure_ascii=False))  # fmt: skip


if __name__ == "__main__":
    main()
