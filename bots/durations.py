"""Durations in config.yaml: ``10s``, ``5m``, ``3h``, ``1d``, ``1h30m``, or a number of seconds."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: Any) -> Any:
    """Seconds as a float; anything unparseable is handed on for pydantic to reject with its message.

    The message does not quote the value: the error report adds it (``got ...``) where it may, and
    not where it came from the environment.
    """
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(float(n) * _UNITS[u] for n, u in parts)
        raise ValueError("not a duration (use e.g. 30s, 10m, 3h, 1d or a number of seconds)")
    return value


#: Seconds, written as a duration string or a number; never negative.
Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
