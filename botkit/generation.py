"""How to generate: declared once, read by ``botkit generate`` (its flags) and a model bot's
``generate:`` block in config.yaml (its keys) alike, with the key-path or flag errors that
:mod:`botkit.options` makes from one declaration. No TensorFlow here: the CLI and the config
check read it without loading a model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from botkit.options import Options


class GenerateSettings(Options):
    """What samples look like: temperatures, truncation, prefix, labels, length, context."""

    temperature: list[float] = Field(
        default_factory=lambda: [1.0],
        description="sampling temperature, 0 is greedy (default 1.0); several are cycled token by token, as textgenrnn does (repeat -t)",
        json_schema_extra={"short": "-t", "metavar": "T"},
    )
    top_k: int | None = Field(None, ge=1, description="sample only among the K likeliest tokens")
    top_p: float | None = Field(None, gt=0, le=1, description="sample only among the likeliest tokens holding P of the probability (nucleus)")
    prefix: str = Field("", description="text every sample starts with")
    label: list[str] | None = Field(
        None, description="context label (a trained one); several are spread over the samples (default: none, the label-free output)"
    )
    max_length: int | None = Field(None, ge=1, description="longest sample in tokens, prefix included, a reply's parent not (default: 300 characters' worth)")
    repetition_penalty: float | None = Field(
        None, gt=0, description="transformer models: divide the logits of tokens already in the sample by this (CTRL's penalty; 1.0-1.3 is usual; default none)"
    )
    stop: list[str] | None = Field(None, description="cut each sample where this text first appears (repeat for several)")
    context: Literal["window", "carry", "sliding"] | None = Field(
        None,
        description="window: beyond the trained window W, condition on the last W/2..W tokens, as training and eval do (default); "
        "carry: on everything; sliding: on exactly the last W, as textgenrnn does (W times slower; default for imported textgenrnn models)",
    )

    @field_validator("temperature", "label", "stop", mode="before")
    @classmethod
    def _one_or_a_list(cls, value: Any) -> Any:
        """``temperature: 0.7`` and ``label: politics`` in config.yaml mean a list of one."""
        return [value] if isinstance(value, (int, float, str)) and not isinstance(value, bool) else value

    def given(self) -> dict[str, Any]:
        """The settings as :meth:`botkit.generate.Generator.generate` takes them."""
        return {**self.model_dump(exclude={"label"}), "label": self.label or [None]}
