"""How golden entries and verdicts write numbers and record selectors."""

from __future__ import annotations

import math
from typing import Any

from repro.experiments.results import IDENTITY


def num(x: float | None) -> str:
    if x is None:
        return "missing"
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if isinstance(x, int):
        return str(x)
    return f"{x:.1f}" if abs(x - round(x, 1)) < 1e-9 else f"{x:.2f}"


def ratio(x: float) -> str:
    return f"{x:.3f}"


def label(sel: dict[str, Any]) -> str:
    return " ".join(f"{k}={sel[k]}" for k in IDENTITY if k in sel)


def common(first: dict[str, Any], second: dict[str, Any]) -> str:
    return label({k: v for k, v in first.items() if second.get(k) == v})


def diff(first: dict[str, Any], second: dict[str, Any]) -> str:
    """The fields of `first` that differ from `second`, e.g. 'step=1'."""
    return label({k: v for k, v in first.items() if second.get(k) != v}) or "(same)"


def ratio_label(after: dict[str, Any], before: dict[str, Any]) -> str:
    return f"{diff(after, before)}/{diff(before, after)}"
