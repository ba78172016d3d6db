"""Pretrained SmolLM2 against the LSTM, and botkit's fine-tune against Hugging Face transformers: held-out titles, same budget, one run.

    BOTKIT_CACHE=/tmp/bkcache .venv/bin/python bench/pretrained_titles.py                  # 5 minutes, all five sides
    BOTKIT_CACHE=/tmp/bkcache .venv/bin/python bench/pretrained_titles.py --minutes 2,5,10
    .venv/bin/python bench/pretrained_titles.py --base /tmp/tiny_llama --minutes 0.2         # a check on a tiny model

Data: the first ``--train-lines`` (1,800) lines of ``../shared/data/hacker_news_2000.txt`` (its
``title`` header line dropped) train, the last ``--held-out`` (200) are held out, as
``base_finetune.py``'s ``split()`` does (``botkit/data/hacker_news_titles.txt`` when ``../shared``
is absent). At each budget of ``--minutes`` (a comma list runs each), one after the other:

* ``scratch``: ``botkit train train.txt -o X --minutes M --sample-every 0`` (the char LSTM, defaults);
* ``from_base``: the same ``--from base`` (the shipped LSTM base model);
* ``zero_shot``: ``botkit eval smollm2 held_out.txt`` (no training; run once, whatever the budgets);
* ``botkit_smollm2``: ``botkit train train.txt --from smollm2 -o X --minutes M --sample-every 0``;
* ``transformers``: Hugging Face ``transformers`` + PyTorch CPU fine-tuning the same folder with
  botkit's recipe (framing, 128-token packed windows, batch 8, the top 6 of 30 blocks + the final
  norm, AdamW 1e-3 decaying linearly to 0 over the budget, the same 90/10 split with per-epoch
  validation, best weights kept, patience 5), in its own environment (``transformers_env.py``,
  ``transformers_driver.py``; 2 torch threads).

Each side is then scored on the held-out titles in nats per character (the summed NLL of the
text tokens and the closing end marker over characters + 1 per title: ``botkit eval``'s number
for both families, recomputed the same way by the peer's driver), and writes 10 samples
(temperature 0.8, top-p 0.95; ``botkit generate -n 10 -t 0.8 --top-p 0.95 --filters none``; the
peer's ``model.generate`` with do_sample, top_k=0, the same 75-token limit as botkit's default).
The two fine-tuned transformers are also timed generating: 32 rows, at most 64 new tokens, KV
cache (``botkit_generate_timing.py``: ``botkit.generate.load`` + ``generate(32, ...)``;
the peer: ``model.generate``): seconds from process start to the first batch of samples
(imports, load, graph build), then sampled tokens/s of a second call; botkit's also over 256
samples at its default row count (64), where a row whose sample ended starts the next (the peer's
``generate`` runs a batch until its longest row ends, so its rate is one batch's at any count).

What each budget covers: botkit's ``--minutes`` clock starts after the imports and the model
load, and covers tokenizing and packing, for the transformer the frozen bottom blocks' single
pass over every window, the steps, the per-epoch validation and the best checkpoint's saves; the peer's clock starts before its first step (after imports, load, tokenizing
and packing) and covers its steps, per-epoch validation and best-weights copies. Since what is
outside differs, the whole training process's wall clock is reported for every side as well,
with its peak RSS (``os.wait4`` of each child). Training tokens/s: packed tokens (8 × 128 a step
for the transformers; characters, 32 × 128 a step, for the LSTM) over the seconds inside steps.

Prints the machine, a markdown table and the samples; figures to ``bench/out/pretrained_titles.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import peer_env
import transformers_env
from base_finetune import split

ROOT = peer_env.HERE.parent
DATA = ROOT.parent / "shared" / "data" / "hacker_news_2000.txt"
FALLBACK = ROOT / "botkit" / "data" / "hacker_news_titles.txt"
SIDES = ("scratch", "from_base", "zero_shot", "botkit_smollm2", "transformers")
NAMES = {
    "scratch": "LSTM from scratch (botkit)",
    "from_base": "LSTM `--from base` (botkit)",
    "zero_shot": "SmolLM2 zero-shot",
    "botkit_smollm2": "SmolLM2 fine-tuned by botkit",
    "transformers": "SmolLM2 fine-tuned by transformers",
}
SAMPLING = ("-t", "0.8", "--top-p", "0.95", "--filters", "none", "--seed", "0")
MAX_NEW = 75  # botkit generate's default for a transformer: round(300 characters / 4.0)


class Failed(RuntimeError):
    pass


def run(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> dict[str, Any]:
    """Run ``argv``; its stdout, stderr, wall seconds and its own peak RSS (MiB, from ``os.wait4``)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        began = time.monotonic()
        child = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.monotonic() - began
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        raise Failed(f"{' '.join(map(str, argv[:4]))} ... failed (exit {child.returncode}):\n{stderr.strip()[-2500:]}")
    return {"stdout": stdout, "stderr": stderr, "wall_seconds": round(wall, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def botkit(*args: str) -> dict[str, Any]:
    return run([sys.executable, "-m", "botkit", *args])


def last_json(done: dict[str, Any]) -> dict[str, Any]:
    return json.loads(done["stdout"].strip().splitlines()[-1])


def process(done: dict[str, Any]) -> dict[str, Any]:
    return {"wall_seconds": done["wall_seconds"], "peak_rss_mib": done["peak_rss_mib"]}


def eval_figures(done: dict[str, Any]) -> dict[str, Any]:
    scored = re.search(r"([0-9.]+) nats/character", done["stdout"])
    count = re.search(r"([0-9,]+) characters(?: \(([0-9,]+) tokens\))? scored", done["stdout"])
    if scored is None:
        raise Failed(f"unexpected botkit eval output:\n{done['stdout']}")
    return {
        "held_out_nats_per_char": float(scored.group(1)),
        "characters_scored": int(count.group(1).replace(",", "")) if count else None,
        "tokens_scored": int(count.group(2).replace(",", "")) if count and count.group(2) else None,
        "eval": process(done), "eval_output": done["stdout"].strip(),
    }  # fmt: skip


def botkit_side(spec: str | None, train: Path, held_out: Path, model: Path, minutes: float, n: int, timing: bool) -> dict[str, Any]:
    """Train (``spec``: ``--from``; None: from scratch), eval, sample; with ``timing``, time generation."""
    trained = botkit("train", str(train), *(["--from", spec] if spec else []), "-o", str(model), "--minutes", str(minutes), "--sample-every", "0")
    rate = re.search(r"(\d+) epoch\(s\), ([0-9,]+) steps, .* \(([0-9,]+) targets/s\)", trained["stdout"])
    if rate is None:
        raise Failed(f"unexpected botkit train output:\n{trained['stdout']}\n{trained['stderr'][-1500:]}")
    training = json.loads((model / "config.json").read_text())["training"]
    result = {
        **eval_figures(botkit("eval", str(model), str(held_out))),
        "epochs": int(rate.group(1)), "steps": int(rate.group(2).replace(",", "")), "train_tokens_per_second": float(rate.group(3).replace(",", "")),
        "tokens_per_step": training["batch_size"] * training["window"], "budget_seconds": training["result"]["seconds"],
        "own_best_val_loss": training["result"].get("best_val_loss"), "train": process(trained), "train_summary": trained["stdout"].strip(),
    }  # fmt: skip
    result["samples"] = botkit("generate", str(model), "-n", str(n), *SAMPLING)["stdout"].rstrip("\n").split("\n")
    if timing:
        done = run([sys.executable, str(peer_env.HERE / "botkit_generate_timing.py"), str(model), repr(time.time())])
        result["generation"] = {**last_json(done), **process(done)}
    return result


def zero_shot_side(spec: str, held_out: Path, n: int) -> dict[str, Any]:
    result = eval_figures(botkit("eval", spec, str(held_out)))
    result["samples"] = botkit("generate", spec, "-n", str(n), *SAMPLING)["stdout"].rstrip("\n").split("\n")
    return result


def transformers_side(folder: Path, train_docs: Path, held_out_docs: Path, work: Path, minutes: float, n: int) -> dict[str, Any]:
    env, cwd = transformers_env.driver_env(), work
    work.mkdir(parents=True, exist_ok=True)
    trained = run(transformers_env.driver_command("train", folder, train_docs, work, minutes * 60), env=env, cwd=cwd)
    t = last_json(trained)
    scored = run(transformers_env.driver_command("eval", folder, t["trained"], held_out_docs), env=env, cwd=cwd)
    s = last_json(scored)
    samples = last_json(run(transformers_env.driver_command("sample", folder, t["trained"], n, MAX_NEW), env=env, cwd=cwd))["samples"]
    gen = run(transformers_env.driver_command("gen", folder, t["trained"], repr(time.time()), 32, 64), env=env, cwd=cwd)
    return {
        "held_out_nats_per_char": s["nats_per_char"], "characters_scored": s["characters"], "tokens_scored": s["tokens"], "eval": process(scored),
        "epochs": t["epochs"], "steps": t["steps"], "train_tokens_per_second": t["tokens_per_second"], "tokens_per_step": t["tokens_per_step"],
        "budget_seconds": t["elapsed_seconds"], "own_best_val_loss": t["best_val_loss"], "train": process(trained), "driver_train": t,
        "driver_eval": s, "samples": samples, "generation": {**last_json(gen), **process(gen)},
    }  # fmt: skip


def write_jsonl(txt: Path) -> Path:
    """The documents of a ``.txt`` corpus as botkit reads them, one ``{"text": ...}`` a line (for the peer)."""
    from botkit.corpus.io import read_corpus

    path = txt.with_suffix(".jsonl")
    path.write_text("".join(json.dumps({"text": doc.text}, ensure_ascii=False) + "\n" for doc in read_corpus(txt)), encoding="utf-8")
    return path


def chars_per_token(folder: Path, docs: Path) -> float:
    """Characters (+1 a document) per packed token (SEP text SEP) of the transformer's tokenizer on ``docs``."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    texts = [json.loads(line)["text"] for line in docs.read_text(encoding="utf-8").splitlines()]
    ids = sum(len(e.ids) + 2 for e in tokenizer.encode_batch(texts, add_special_tokens=False))
    return sum(len(t) + 1 for t in texts) / ids


def fmt(value: Any, spec: str, none: str = "–") -> str:
    return none if value is None else format(value, spec)


def tables(results: dict[str, dict[str, dict[str, Any]]], cpt: float) -> str:
    lines = [
        "| budget | side | held-out nats/char | train tokens/s | ≈ chars/s | steps | epochs | budget s used | train process wall s | train peak RSS MiB | eval wall s | eval peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for minutes, sides in results.items():
        for name, r in sides.items():
            lstm = name in ("scratch", "from_base")
            rate = r.get("train_tokens_per_second")
            chars = rate if lstm else (rate * cpt if rate else None)
            train = r.get("train") or {}
            lines.append(
                f"| {minutes} min | {NAMES[name]} | {r['held_out_nats_per_char']:.4f} | {fmt(rate, ',.0f')}{' (chars)' if lstm and rate else ''} | {fmt(chars, ',.0f')} "
                f"| {fmt(r.get('steps'), ',')} | {fmt(r.get('epochs'), '')} | {fmt(r.get('budget_seconds'), '.0f')} | {fmt(train.get('wall_seconds'), '.0f')} "
                f"| {fmt(train.get('peak_rss_mib'), ',.0f')} | {r['eval']['wall_seconds']:.0f} | {r['eval']['peak_rss_mib']:,.0f} |"
            )
    lines += [
        "",
        "| budget | fine-tune | first batch of 32 s (from process start) | load s | steady sampled tokens/s | steady row-positions/s | sampled tokens | positions | 256 samples (rows): sampled tokens/s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for minutes, sides in results.items():
        for name in ("botkit_smollm2", "transformers"):
            g = sides.get(name, {}).get("generation")
            if g:
                lines.append(
                    f"| {minutes} min | {NAMES[name]} | {g['first_sample_seconds']:.1f} | {g['load_seconds']:.1f} | {g['steady_tokens_per_second']:,.0f} "
                    f"| {g['steady_row_positions_per_second']:,.0f} | {g['steady_tokens']:,} | {g['steady_positions']} | {fmt(g.get('many_tokens_per_second'), ',.0f', 'as one batch')}{rows_note(g)} "
                    f"| {g['peak_rss_mib']:,.0f} |"
                )
    return "\n".join(lines)


def rows_note(generation: dict[str, Any]) -> str:
    """`` (64)``: the rows botkit's long run used (absent from the peer's, and from older figures)."""
    return f" ({generation['many_rows']})" if generation.get("many_rows") else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", default="5", help="training budget of each side, minutes; a comma list runs each (default 5)")
    parser.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated subset of {', '.join(SIDES)} (default: all)")
    parser.add_argument("--base", type=Path, help="the pretrained Hugging Face folder (default: the cache's smollm2, $BOTKIT_CACHE/models/smollm2)")
    parser.add_argument("--data", type=Path, help=f"titles, one a line (default {DATA}, else {FALLBACK})")
    parser.add_argument("--train-lines", type=int, default=1800, help="the first N lines train (default 1800; a header line among them is dropped)")
    parser.add_argument("--held-out", type=int, default=200, help="the last N lines are held out (default 200)")
    parser.add_argument("-n", type=int, default=10, help="samples written by each side (default 10)")
    parser.add_argument("--out", type=Path, default=peer_env.HERE / "out", help="work folder (default bench/out)")
    parser.add_argument("--json", type=Path, help="where the figures go (default OUT/pretrained_titles.json)")
    args = parser.parse_args()
    budgets = [float(m) for m in args.minutes.split(",") if m.strip()]
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if unknown := sorted(set(sides) - set(SIDES)):
        raise SystemExit(f"--sides: unknown {', '.join(unknown)} (choose among {', '.join(SIDES)})")
    data = args.data or (DATA if DATA.exists() else FALLBACK)
    from botkit.pretrained.sources import models_dir

    if args.base is not None:
        folder, spec = args.base.resolve(), str(args.base.resolve())
    else:
        folder, spec = models_dir() / "smollm2", "smollm2"
    if not (folder / "config.json").is_file():
        raise SystemExit(f"{folder}: no pretrained model there; run `botkit pull smollm2` (or set BOTKIT_CACHE=/tmp/bkcache), or give --base FOLDER")
    out = (args.out / "pretrained_titles").resolve()
    out.mkdir(parents=True, exist_ok=True)
    train, held_out, n_train, n_held = split(data, out, args.train_lines, args.held_out)
    train_docs, held_out_docs = write_jsonl(train), write_jsonl(held_out)
    cpt = chars_per_token(folder, train_docs)
    peer: dict[str, Any] = {}
    if "transformers" in sides:  # set-up first: the environment (installed on first use) and its versions
        transformers_env.python()
        peer = {"environment": transformers_env.REQUIREMENTS, "versions": transformers_env.versions(), "threads": transformers_env.THREADS}
    machine = peer_env.machine()
    print(f"{data}: {n_train:,} titles train, the last {n_held} held out; budgets {', '.join(f'{m:g}' for m in budgets)} min; base {spec} ({folder})")
    print(f"sides: {', '.join(sides)}; the base tokenizer: {cpt:.2f} characters per packed token on train.txt")
    if peer:
        print(f"peer: {', '.join(f'{k} {v}' for k, v in peer['versions'].items())}; torch threads {peer['threads']}")
    print(f"machine: {peer_env.machine_line(machine)}", flush=True)

    results: dict[str, dict[str, dict[str, Any]]] = {}
    errors: dict[str, str] = {}
    zero_shot: dict[str, Any] | None = None
    for minutes in budgets:
        key = f"{minutes:g}"
        here = results.setdefault(key, {})
        work = out / f"{key}min"
        work.mkdir(exist_ok=True)
        for name in sides:
            began = time.monotonic()
            try:
                if name == "scratch":
                    here[name] = botkit_side(None, train, held_out, work / "scratch", minutes, args.n, False)
                elif name == "from_base":
                    here[name] = botkit_side("base", train, held_out, work / "from_base", minutes, args.n, False)
                elif name == "zero_shot":
                    zero_shot = zero_shot or zero_shot_side(spec, held_out, args.n)
                    here[name] = zero_shot
                elif name == "botkit_smollm2":
                    here[name] = botkit_side(spec, train, held_out, work / "botkit_smollm2", minutes, args.n, True)
                else:
                    here[name] = transformers_side(folder, train_docs, held_out_docs, work / "transformers", minutes, args.n)
            except Failed as exc:
                errors[f"{key}/{name}"] = str(exc)
                print(f"{key} min, {name}: FAILED\n{exc}", file=sys.stderr, flush=True)
                continue
            r = here[name]
            r["side_wall_seconds"] = round(time.monotonic() - began)
            rate = r.get("train_tokens_per_second")
            print(
                f"{key} min, {name}: {r['held_out_nats_per_char']:.4f} nats/char held out"
                + (
                    f"; {rate:,.0f} tokens/s, {r['steps']:,} steps, train process {r['train']['wall_seconds']:.0f} s, {r['train']['peak_rss_mib']:,.0f} MiB"
                    if rate
                    else ""
                )
                + f"; side done in {r['side_wall_seconds']} s",
                flush=True,
            )
    load_after = os.getloadavg()[0]
    print(f"\n## Held-out titles ({n_held} titles, {data.name}), load {machine['load_average']:.1f} before, {load_after:.1f} after\n")
    print(f"machine: {peer_env.machine_line(machine)}\n")
    print(tables(results, cpt))
    for key, here in results.items():
        b, t = here.get("botkit_smollm2"), here.get("transformers")
        if b and t:
            gb, gt = b["generation"], t["generation"]
            print(
                f"\n{key} min, botkit vs transformers: held-out {b['held_out_nats_per_char'] - t['held_out_nats_per_char']:+.4f} nats/char, "
                f"training tokens/s {b['train_tokens_per_second'] / t['train_tokens_per_second']:.2f}×, train process wall {b['train']['wall_seconds'] / t['train']['wall_seconds']:.2f}×, "
                f"peak RSS {b['train']['peak_rss_mib'] / t['train']['peak_rss_mib']:.2f}×; generation {gb['steady_tokens_per_second'] / gt['steady_tokens_per_second']:.2f}× tokens/s, "
                f"first batch {gb['first_sample_seconds']:.0f} s vs {gt['first_sample_seconds']:.0f} s"
            )
    for key, here in results.items():
        for name, r in here.items():
            if name == "zero_shot" and key != next(iter(results)):
                continue
            print(f"\n### {NAMES[name]}{'' if name == 'zero_shot' else f', {key} min'}: {len(r['samples'])} samples (t 0.8, top-p 0.95)\n")
            print("\n".join(f"    {line}" for line in r["samples"]))
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "data": str(data), "train_titles": n_train, "held_out_titles": n_held, "budgets_minutes": budgets,
        "base": {"spec": spec, "folder": str(folder)}, "chars_per_packed_token": cpt, "machine": machine, "load_average_before": machine["load_average"],
        "load_average_after": load_after, "peer": peer, "results": results, "errors": errors,
    }  # fmt: skip
    path = args.json or args.out / "pretrained_titles.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"\nfigures: {path}")
    if errors:
        raise SystemExit(f"{len(errors)} side(s) failed: {', '.join(errors)}")


if __name__ == "__main__":
    main()
