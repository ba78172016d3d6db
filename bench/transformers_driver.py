"""The peer of ``botkit train --from smollm2``: Hugging Face ``transformers`` + PyTorch (CPU) fine-tuning
the same Hugging Face-format folder, mirroring botkit's recipe; one JSON object on stdout per command.

Runs in ``bench/out/transformers-venv`` (``transformers_env.py``), never in botkit's environment::

    transformers_driver.py train BASE DOCS.jsonl OUT SECONDS [--train-size 0.9] [--patience 5] [--seed 0]
    transformers_driver.py eval BASE TRAINED DOCS.jsonl       # TRAINED: OUT/trained.safetensors, or - (zero-shot)
    transformers_driver.py sample BASE TRAINED N MAX_NEW [--seed 0]
    transformers_driver.py gen BASE TRAINED T0 ROWS NEW [--seed 1]   # T0: the parent's time.time() at spawn

``DOCS.jsonl``: one ``{"text": ...}`` a line (the bench writes them from botkit's own reading of
the ``.txt`` corpus, so both sides see exactly the same documents).

What is mirrored from botkit (``botkit/pretrained/{text,train,score}.py``, ``botkit/training.py``):

* Framing: every document is ``SEP text SEP``, ``SEP`` the first of ``<|endoftext|>``,
  ``<|end_of_text|>``, ``</s>``, ``<eos>``, ``<|im_end|>`` the tokenizer has; ids from the folder's
  ``tokenizer.json`` through ``tokenizers`` (what ``transformers``' fast tokenizer is), no special
  tokens added. Loss and score on the text's tokens and the closing ``SEP`` only.
* Split: the last 10 % of the training documents validate (``--train-size``), as ``botkit train``'s
  default; validation every epoch in nats/char, the best epoch's weights kept (in memory), early
  stopping after ``--patience`` epochs without a better one.
* Windows: documents packed end to end into rows of 128 + 1 ids (the last row padded with ``SEP``,
  weight 0), a new seeded order every epoch, 8 rows a step (whole batches, across epochs),
  ``ceil(rows / 8)`` steps an epoch; loss = summed NLL × weight / summed weight.
* Trainable: the top fifth of the blocks (``max(1, round(blocks × 0.2))``: 6 of SmolLM2's 30) and
  the final norm; the embeddings (tied with the output) and every other layer frozen
  (``requires_grad=False``, so no gradient flows through the bottom; it still runs forward every step).
* Optimizer: AdamW, lr 1e-3, betas (0.9, 0.999), eps 1e-7 (Keras's), no weight decay, each
  parameter's gradient clipped to norm 1 (Keras's ``clipnorm``: per variable, not global).
* Schedule: lr = 1e-3 × (1 − elapsed / budget), set before every step; stop after the first step that
  ends past the budget (then that epoch's validation, as Keras ends the epoch).
* Budget: the clock starts just before the first step (after import, load, tokenizing and packing)
  and covers the steps, the per-epoch validation and the best-weights copies.
* Score: each document framed alone, rows sorted by length, 8 a batch, right-padded with an
  attention mask; summed NLL / (characters + 1 per document). Documents over 512 tokens in chunks.

float32 weights and compute (``dtype=torch.float32``), ``torch.set_num_threads(2)`` (and 2 inter-op
threads; ``OMP_NUM_THREADS=2`` from the bench), the model's default attention implementation (SDPA).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

T_IMPORT = time.time()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

END_TOKENS = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|im_end|>")
WINDOW, BATCH, LR, TOP_FRACTION, CLIPNORM, EPS = 128, 8, 1e-3, 0.2, 1.0, 1e-7
CHUNK, WIDTH_STEP = 512, 32
THREADS = int(os.environ.get("BENCH_TORCH_THREADS", "2"))
torch.set_num_threads(THREADS)
try:
    torch.set_num_interop_threads(THREADS)
except RuntimeError:
    pass


def emit(result: dict[str, Any]) -> None:
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["torch"], result["transformers"], result["threads"] = torch.__version__, transformers.__version__, torch.get_num_threads()
    print(json.dumps(result, ensure_ascii=False), flush=True)


def read_docs(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Tokens:
    def __init__(self, base: Path) -> None:
        self.fast = Tokenizer.from_file(str(base / "tokenizer.json"))
        found = [self.fast.token_to_id(t) for t in END_TOKENS]
        ids = [i for i in found if i is not None]
        if not ids:
            raise SystemExit(f"{base}: the tokenizer has none of {END_TOKENS}")
        self.sep = int(ids[0])

    def encode(self, text: str) -> list[int]:
        return list(self.fast.encode(text, add_special_tokens=False).ids) if text else []

    def decode(self, ids: list[int]) -> str:
        return str(self.fast.decode([int(i) for i in ids], skip_special_tokens=False))

    def document(self, text: str) -> tuple[list[int], list[int]]:
        body = self.encode(text) + [self.sep]
        return [self.sep] + body, [0] + [1] * len(body)


def load_model(base: Path, trained: str | None) -> tuple[Any, float]:
    """The causal LM of ``base`` in float32 (its trained layers put back from ``trained``), and the seconds it took."""
    began = time.monotonic()
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    except TypeError:  # transformers before 4.56 names it torch_dtype
        model = transformers.AutoModelForCausalLM.from_pretrained(str(base), torch_dtype=torch.float32)
    if trained and trained != "-":
        from safetensors.torch import load_file

        missing, unexpected = model.load_state_dict(load_file(trained), strict=False)
        if unexpected:
            raise SystemExit(f"{trained}: holds {unexpected[:3]}..., which the model does not have")
    model.eval()
    return model, time.monotonic() - began


def trainable_names(model: Any) -> list[str]:
    """The top fifth of the blocks and the final norm (as botkit's ``trained_layers``), by parameter name."""
    layers = model.model.layers
    top = max(1, round(len(layers) * TOP_FRACTION))
    chosen = {id(p) for layer in layers[-top:] for p in layer.parameters()} | {id(p) for p in model.model.norm.parameters()}
    return [name for name, p in model.named_parameters() if id(p) in chosen]


# -- scoring -----------------------------------------------------------------------------------------


def prepare(tokens: Tokens, docs: list[str]) -> tuple[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], int]:
    rows: list[tuple[list[int], list[int]]] = []
    chars = 0
    for text in docs:
        ids, weights = tokens.document(text)
        chars += len(text) + 1
        for start in range(0, len(ids) - 1, CHUNK):
            rows.append((ids[start : start + CHUNK + 1], weights[start : start + CHUNK + 1]))
    rows.sort(key=lambda r: len(r[0]))
    batches = []
    for at in range(0, len(rows), BATCH):
        part = rows[at : at + BATCH]
        width = -(-max(len(r[0]) for r in part) // WIDTH_STEP) * WIDTH_STEP + 1
        ids = torch.full((len(part), width), tokens.sep, dtype=torch.long)
        pad = torch.zeros((len(part), width), dtype=torch.long)
        weight = torch.zeros((len(part), width), dtype=torch.float32)
        for i, (row, w) in enumerate(part):
            ids[i, : len(row)], pad[i, : len(row)], weight[i, : len(row)] = torch.tensor(row), 1, torch.tensor(w, dtype=torch.float32)
        batches.append((ids, pad, weight))
    return batches, chars


@torch.inference_mode()
def score(model: Any, prepared: tuple[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], int]) -> tuple[float, int, int]:
    """Summed NLL of the targets, characters (+1 a document), tokens scored."""
    batches, chars = prepared
    nats, scored = 0.0, 0.0
    for ids, pad, weight in batches:
        logits = model(input_ids=ids[:, :-1], attention_mask=pad[:, :-1]).logits.float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        nats += float((nll * weight[:, 1:]).sum())
        scored += float(weight[:, 1:].sum())
    return nats, chars, int(round(scored))


# -- training ----------------------------------------------------------------------------------------


def pack(tokens: Tokens, docs: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ids: list[int] = []
    weights: list[int] = []
    for text in docs:
        row, weight = tokens.document(text)
        ids += row
        weights += weight
    rows = max(1, math.ceil((len(ids) - 1) / WINDOW))
    size = rows * WINDOW + 1
    ids_arr, w_arr = np.full(size, tokens.sep, np.int64), np.zeros(size, np.float32)
    ids_arr[: len(ids)], w_arr[: len(ids)] = ids, weights
    take = (np.arange(rows) * WINDOW)[:, None] + np.arange(WINDOW + 1)[None, :]
    return torch.from_numpy(ids_arr[take]), torch.from_numpy(w_arr[take])


def batches(rows: int, seed: int) -> Iterator[torch.Tensor]:
    """Row indices, 8 a step: a new permutation every pass, batches running across passes (as tf.data's
    shuffle → repeat → batch); a corpus under one batch is repeated to fill it."""
    rng = np.random.default_rng(seed)
    copies = -(-BATCH // rows) if rows < BATCH else 1
    buffer: list[int] = []
    while True:
        while len(buffer) < BATCH:
            buffer += list(rng.permutation(np.tile(np.arange(rows), copies)))
        yield torch.tensor(buffer[:BATCH])
        buffer = buffer[BATCH:]


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    tokens = Tokens(args.base)
    model, load_seconds = load_model(args.base, None)
    docs = read_docs(args.docs)
    cut = len(docs) if args.train_size >= 1 else max(1, min(len(docs) - 1, round(len(docs) * args.train_size)))
    train_docs, val_docs = docs[:cut], docs[cut:]
    x, w = pack(tokens, train_docs)
    names = set(trainable_names(model))
    for name, p in model.named_parameters():
        p.requires_grad = name in names
    params = [p for name, p in model.named_parameters() if name in names]
    trainable = sum(p.numel() for p in params)
    optimizer = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=EPS, weight_decay=0.0)
    val = prepare(tokens, val_docs) if val_docs else None
    steps_per_epoch = max(1, math.ceil(len(x) / BATCH))
    order = batches(len(x), args.seed)
    budget = args.seconds
    best: dict[str, torch.Tensor] | None = None
    best_val, bad, step, epoch, step_seconds, used = None, 0, 0, 0, 0.0, 0.0
    history: list[dict[str, Any]] = []
    model.train()
    start = time.monotonic()
    stop = False
    while not stop:
        losses = []
        for _ in range(steps_per_epoch):
            lr = LR * max(0.0, 1.0 - (time.monotonic() - start) / budget)
            for group in optimizer.param_groups:
                group["lr"] = lr
            began = time.monotonic()
            rows = next(order)
            ids, weight = x[rows], w[rows]
            logits = model(input_ids=ids[:, :-1]).logits
            nll = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), ids[:, 1:], reduction="none")
            loss = (nll * weight[:, 1:]).sum() / weight[:, 1:].sum()
            loss.backward()
            for p in params:
                if p.grad is not None:
                    torch.nn.utils.clip_grad_norm_([p], CLIPNORM)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step_seconds += time.monotonic() - began
            step += 1
            losses.append(float(loss.detach()))
            used = time.monotonic() - start  # the clock at the last step's end: what botkit's result.seconds records
            if used >= budget:
                stop = True
                break
        epoch += 1
        entry: dict[str, Any] = {"epoch": epoch, "step": step, "seconds": round(time.monotonic() - start, 1), "train_loss": float(np.mean(losses))}
        if val is not None:
            model.eval()
            nats, chars, _ = score(model, val)
            model.train()
            entry["val_loss"] = nats / chars
            if best_val is None or entry["val_loss"] < best_val:
                best_val, bad = entry["val_loss"], 0
                best = {name: p.detach().clone() for name, p in model.named_parameters() if name in names}
            else:
                bad += 1
                if args.patience and bad >= args.patience:
                    stop = True
        history.append(entry)
        print(json.dumps(entry), file=sys.stderr, flush=True)
    elapsed = time.monotonic() - start
    kept = best if best is not None else {name: p.detach().clone() for name, p in model.named_parameters() if name in names}
    args.out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in kept.items()}, str(args.out / "trained.safetensors"))
    tokens_per_step = BATCH * WINDOW
    emit({
        "steps": step, "epochs": epoch, "steps_per_epoch": steps_per_epoch, "windows": len(x), "train_documents": len(train_docs),
        "val_documents": len(val_docs), "budget_seconds": budget, "elapsed_seconds": round(used, 1), "loop_seconds": round(elapsed, 1), "step_seconds": round(step_seconds, 1),
        "tokens_per_second": step * tokens_per_step / step_seconds if step_seconds else 0.0, "tokens_per_step": tokens_per_step,
        "best_val_loss": best_val, "train_loss": history[-1]["train_loss"] if history else None, "history": history,
        "trainable_parameters": trainable, "trainable_tensors": len(params), "blocks": len(model.model.layers),
        "load_seconds": round(load_seconds, 1), "import_seconds": round(T_IMPORT_DONE - T_IMPORT, 1), "trained": str(args.out / "trained.safetensors"),
    })  # fmt: skip


def evaluate(args: argparse.Namespace) -> None:
    tokens = Tokens(args.base)
    model, load_seconds = load_model(args.base, args.trained)
    docs = read_docs(args.docs)
    began = time.monotonic()
    nats, chars, scored = score(model, prepare(tokens, docs))
    emit({"nats_per_char": nats / chars, "nats": nats, "characters": chars, "tokens": scored, "nats_per_token": nats / max(scored, 1),
          "documents": len(docs), "score_seconds": round(time.monotonic() - began, 1), "load_seconds": round(load_seconds, 1)})  # fmt: skip


def generate(model: Any, tokens: Tokens, rows: int, new: int, seed: int) -> tuple[list[str], int, int]:
    """``rows`` samples of at most ``new`` tokens (temperature 0.8, top-p 0.95, no top-k, KV cache),
    each after ``SEP`` and ending at the first ``SEP`` (never the first token, as botkit's sampler);
    the texts, the sampled tokens (each row's up to and including its end marker) and the positions run."""
    torch.manual_seed(seed)
    start = torch.full((rows, 1), tokens.sep, dtype=torch.long)
    with torch.inference_mode():
        out = model.generate(
            input_ids=start, attention_mask=torch.ones_like(start), do_sample=True, temperature=0.8, top_p=0.95, top_k=0,
            max_new_tokens=new, eos_token_id=tokens.sep, pad_token_id=tokens.sep, begin_suppress_tokens=[tokens.sep], use_cache=True,
        )  # fmt: skip
    texts, sampled = [], 0
    for row in out[:, 1:].tolist():
        end = row.index(tokens.sep) if tokens.sep in row else len(row)
        texts.append(tokens.decode(row[:end]))
        sampled += min(end + 1, len(row))
    return texts, sampled, int(out.shape[1] - 1)


def sample(args: argparse.Namespace) -> None:
    tokens = Tokens(args.base)
    model, _ = load_model(args.base, args.trained)
    texts, _, _ = generate(model, tokens, args.n, args.max_new, args.seed)
    emit({"samples": texts})


def gen(args: argparse.Namespace) -> None:
    tokens = Tokens(args.base)
    model, load_seconds = load_model(args.base, args.trained)
    began = time.monotonic()
    _, first_tokens, first_positions = generate(model, tokens, args.rows, args.new, args.seed)
    first_call = time.monotonic() - began
    first_sample = time.time() - args.t0
    began = time.monotonic()
    texts, tokens_sampled, positions = generate(model, tokens, args.rows, args.new, args.seed + 1)
    steady = time.monotonic() - began
    emit({
        "first_sample_seconds": round(first_sample, 2), "first_call_seconds": round(first_call, 2), "load_seconds": round(load_seconds, 1),
        "first_call_tokens": first_tokens, "first_call_positions": first_positions, "rows": args.rows, "max_new_tokens": args.new,
        "steady_seconds": round(steady, 3), "steady_tokens": tokens_sampled, "steady_positions": positions,
        "steady_tokens_per_second": tokens_sampled / steady, "steady_row_positions_per_second": args.rows * positions / steady, "samples": texts[:5],
    })  # fmt: skip


T_IMPORT_DONE = time.time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train")
    p.add_argument("base", type=Path)
    p.add_argument("docs", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("seconds", type=float)
    p.add_argument("--train-size", type=float, default=0.9)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("eval")
    p.add_argument("base", type=Path)
    p.add_argument("trained")
    p.add_argument("docs", type=Path)
    p = sub.add_parser("sample")
    p.add_argument("base", type=Path)
    p.add_argument("trained")
    p.add_argument("n", type=int)
    p.add_argument("max_new", type=int)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("gen")
    p.add_argument("base", type=Path)
    p.add_argument("trained")
    p.add_argument("t0", type=float)
    p.add_argument("rows", type=int)
    p.add_argument("new", type=int)
    p.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    {"train": train, "eval": evaluate, "sample": sample, "gen": gen}[args.command](args)


if __name__ == "__main__":
    main()
