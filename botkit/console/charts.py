"""The console's pictures as PNG bytes: loss curves, corpus statistics, the filter funnel.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend, no display):
safe in the console's worker threads and on a headless server. ``botkit report`` writes the same
bytes to files.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from botkit.console.farm import Funnel
from botkit.corpus import CorpusStats

_WIDTH, _HEIGHT, _DPI = 7.0, 3.6, 100
_TOP_LABELS = 15


def _figure(columns: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(_WIDTH * (1 + 0.4 * (columns - 1)), _HEIGHT), dpi=_DPI, layout="constrained")
    axes = figure.subplots(1, columns, squeeze=False)[0]
    return figure, list(axes)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def loss_png(history: Sequence[dict[str, Any]], title: str, unit: str = "token") -> bytes:
    """Train and validation loss per epoch (nats per token; a transformer's per character)."""
    figure, (axes,) = _figure()
    for key, name in (("train_loss", "train"), ("val_loss", "validation")):
        points = [(entry["epoch"], entry[key]) for entry in history if isinstance(entry.get(key), int | float)]
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", label=name)
    axes.set(title=title, xlabel="epoch", ylabel=f"loss (nats/{unit})")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.grid(alpha=0.3)
    axes.legend()
    return _png(figure)


def corpus_png(stats: CorpusStats) -> bytes:
    """Document lengths as a histogram, and the most common labels."""
    figure, (lengths, labels) = _figure(2)
    lengths.hist(stats.lengths or [0], bins=40, color="#4a7bb7")
    lengths.set(title=f"{stats.path.name}: {stats.documents:,} documents", xlabel="length (characters)", ylabel="documents")
    top = stats.labels.most_common(_TOP_LABELS)
    if top:
        names, counts = zip(*reversed(top), strict=True)
        labels.barh(names, counts, color="#5a9e6f")
        labels.set(title="labels" + (f" (top {_TOP_LABELS} of {len(stats.labels):,})" if len(stats.labels) > _TOP_LABELS else ""), xlabel="documents")
    else:
        labels.set_axis_off()
        labels.text(0.5, 0.5, "no labels", ha="center", va="center")
    return _png(figure)


def funnel_png(funnel: Funnel, title: str) -> bytes:
    """Generated → rejected by each filter → passed, as horizontal bars."""
    figure, (axes,) = _figure()
    names, counts = zip(*reversed(funnel.stages()), strict=True)
    colors = ["#5a9e6f"] + ["#c8553d"] * (len(names) - 2) + ["#4a7bb7"]
    bars = axes.barh(names, counts, color=colors)
    axes.bar_label(bars, padding=3)
    axes.set(title=title, xlabel="candidates")
    return _png(figure)
