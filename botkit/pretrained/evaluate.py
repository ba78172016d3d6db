"""``botkit eval`` of a fine-tuned transformer: nats and bits per *character* (the LSTM's unit, so
the families compare on one scale), and per token of the model's own tokenizer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from botkit.errors import CorpusError
from botkit.model.evaluate import Score
from botkit.pretrained.model import load
from botkit.pretrained.score import DocumentScorer, read_documents


@dataclass(frozen=True)
class TransformerEvalReport:
    model: Path
    file: Path
    score: Score  # over characters (+1 per document: the end marker)
    tokens: int
    documents: int
    conditional: bool

    def summary(self) -> str:
        s = self.score
        read = "as one stream (the model was trained on one)" if self.documents == 1 else f"as {self.documents:,} document(s), one a line"
        lines = [f"{self.file}: read {read}, each ending in the model's end marker"]
        if self.conditional:
            lines.append("a reply model: only the replies are scored, each after its parent")
        lines += [
            f"{self.file} under {self.model}: {s.targets:,} characters ({self.tokens:,} tokens) scored",
            f"cross-entropy: {s.mean:.4f} nats/character, {s.bits:.4f} bits/character; {s.nats / max(self.tokens, 1):.4f} nats/token",
        ]
        return "\n".join(lines)


def evaluate_file(model: str | Path, file: Path) -> TransformerEvalReport:
    loaded = load(model)
    stream = bool(loaded.tune.training.get("single_text")) and file.suffix.lower() != ".jsonl"  # read as the model was trained
    docs = read_documents([file], stream, "evaluate")
    tune = loaded.tune
    scorer = DocumentScorer(loaded.lm, loaded.tokens, tune.framing, labels=tune.labels, conditional=tune.conditional)
    score, tokens = scorer.score(docs)
    if math.isnan(score.mean):
        raise CorpusError(f"{file}: no text to evaluate")
    return TransformerEvalReport(Path(model), file, score, tokens, len(docs), tune.conditional)
