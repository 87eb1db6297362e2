"""Claim kinds: each is one class holding its record selectors, its parameters, its wording and its check,
registered by name for golden files' `kind = "..."` (repro/report/golden.py reads the entries).

Ratios are after/before (the retained fraction); forgotten = 1 - ratio. Accuracies are in percent. A record
a check needs and the results lack makes the claim fail with "missing", never a crash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from repro.registry import Registry
from repro.report.toml_fields import REQUIRED, entry_error, get
from repro.report.views import lookup
from repro.report.wording import common, diff, label, num, ratio, ratio_label

# ---- measured values ------------------------------------------------------------------------------


def value_of(records: list[dict], select: dict[str, Any], fld: str = "accuracy") -> float | None:
    """The selected record's `fld`; None when there is no such record or its value is not a number."""
    if fld == "accuracy":
        value = lookup(records, **select)
    else:
        value = next((r.get(fld) for r in records if all(r.get(k) == v for k, v in select.items())), None)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def ratio_of(records: list[dict], before: dict, after: dict) -> tuple[float | None, str]:
    b, a = value_of(records, before), value_of(records, after)
    if b is None or a is None:
        return None, "missing"
    if b == 0 or math.isnan(a) or math.isnan(b):
        return None, f"undefined ({num(a)}/{num(b)})"
    return round(a / b, 6), ratio(a / b)


# ---- parameters -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Number:
    """A number parameter (a threshold, a margin in points)."""

    name: str
    default: Any = REQUIRED
    nonnegative: bool = False

    def parse(self, entry: dict, path: Path, where: str) -> Any:
        value = get(entry, self.name, float, path, where, self.default)
        if self.nonnegative and value < 0:
            raise entry_error(path, where, f"key {self.name!r} must be >= 0, got {value}")
        return value


@dataclass(frozen=True)
class Steps:
    """The steps of a series, at least two."""

    name: str = "steps"

    def parse(self, entry: dict, path: Path, where: str) -> tuple[int, ...]:
        steps = get(entry, self.name, list, path, where)
        if len(steps) < 2 or not all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
            raise entry_error(path, where, f"key {self.name!r} must list at least two integers, got {steps!r}")
        return tuple(steps)


@dataclass(frozen=True)
class Choice:
    name: str
    options: tuple[str, ...]
    default: str

    def parse(self, entry: dict, path: Path, where: str) -> str:
        value = get(entry, self.name, str, path, where, self.default)
        if value not in self.options:
            raise entry_error(path, where, f"key {self.name!r} must be " + " or ".join(map(repr, self.options))
                              + f", got {value!r}")
        return value


# ---- the kinds --------------------------------------------------------------------------------------


class ClaimKind:
    name: str
    selectors: tuple[str, ...]  # the golden entry's record selectors, each naming every identity field
    params: tuple[Number | Steps | Choice, ...] = ()
    step_from_params = False  # a series: its selectors leave out `step`, the parameters give it

    def describe(self, s: dict[str, dict], p: dict[str, Any]) -> str:
        """The claim in words, for the verdict table's "expected" column."""
        raise NotImplementedError

    def check(self, records: list[dict], s: dict[str, dict], p: dict[str, Any]) -> tuple[bool, str]:
        """(holds, measured text) for selectors `s` with the `over` field filled in."""
        raise NotImplementedError


CLAIM_KINDS: Registry[ClaimKind] = Registry("claim kind")


def register(kind: type[ClaimKind]) -> type[ClaimKind]:
    CLAIM_KINDS.add(kind.name, kind())
    return kind


class _RatioBound(ClaimKind):
    selectors = ("before", "after")
    params = (Number("threshold"),)
    op = ""

    def holds(self, value: float, threshold: float) -> bool:
        raise NotImplementedError

    def describe(self, s, p):
        return f"{common(s['after'], s['before'])}: {ratio_label(s['after'], s['before'])} {self.op} {num(p['threshold'])}"

    def check(self, records, s, p):
        value, text = ratio_of(records, s["before"], s["after"])
        return (value is not None and self.holds(value, p["threshold"])), text


@register
class RatioAtLeast(_RatioBound):
    """after/before >= threshold."""

    name, op = "ratio_at_least", ">="

    def holds(self, value, threshold):
        return value >= threshold


@register
class RatioAtMost(_RatioBound):
    """after/before <= threshold."""

    name, op = "ratio_at_most", "<="

    def holds(self, value, threshold):
        return value <= threshold


@register
class DropAtLeast(ClaimKind):
    """before - after >= points (accuracy points)."""

    name, selectors = "drop_at_least", ("before", "after")
    params = (Number("points", nonnegative=True),)

    def describe(self, s, p):
        return (f"{common(s['before'], s['after'])}: {diff(s['before'], s['after'])} - "
                f"{diff(s['after'], s['before'])} >= {num(p['points'])} points")

    def check(self, records, s, p):
        b, a = value_of(records, s["before"]), value_of(records, s["after"])
        if b is None or a is None:
            return False, "missing"
        drop = round(b - a, 6)
        return drop >= p["points"], f"{num(b)} -> {num(a)} (drop {num(drop)})"


@register
class RatioLess(ClaimKind):
    """measure(a_after/a_before) < measure(b_after/b_before) - margin; measure "retained" (the ratio) or
    "forgotten" (1 - the ratio)."""

    name, selectors = "ratio_less", ("a_before", "a_after", "b_before", "b_after")
    params = (Number("margin", 0.0, nonnegative=True), Choice("measure", ("retained", "forgotten"), "retained"))

    def describe(self, s, p):
        a, b = s["a_after"], s["b_after"]
        measure = ratio_label(a, s["a_before"])
        measure = f"1 - {measure}" if p["measure"] == "forgotten" else measure
        text = f"{common(a, b)}: {p['measure']} ({measure}) at {diff(a, b)} < at {diff(b, a)}"
        return text + (f" - {num(p['margin'])}" if p["margin"] else "")

    def check(self, records, s, p):
        ra, ta = ratio_of(records, s["a_before"], s["a_after"])
        rb, tb = ratio_of(records, s["b_before"], s["b_after"])
        if ra is None or rb is None:
            return False, f"{ta} vs {tb}"
        if p["measure"] == "forgotten":
            ra, rb = round(1 - ra, 6), round(1 - rb, 6)
        return ra < rb - p["margin"], f"{ratio(ra)} vs {ratio(rb)}"


@register
class LessThan(ClaimKind):
    """a < b - margin (accuracy points)."""

    name, selectors = "less_than", ("a", "b")
    params = (Number("margin", 0.0, nonnegative=True),)

    def describe(self, s, p):
        text = f"{common(s['a'], s['b'])}: {diff(s['a'], s['b'])} < {diff(s['b'], s['a'])}"
        return text + (f" - {num(p['margin'])} points" if p["margin"] else "")

    def check(self, records, s, p):
        a, b = value_of(records, s["a"]), value_of(records, s["b"])
        if a is None or b is None:
            return False, f"{num(a)} vs {num(b)}"
        return a < b - p["margin"], f"{num(a)} vs {num(b)}"


@register
class NonIncreasing(ClaimKind):
    """The series at step k <= the series at step k-1 + slack, for consecutive steps."""

    name, selectors = "non_increasing", ("series",)
    params = (Steps(), Number("slack", 0.0, nonnegative=True))
    step_from_params = True

    def describe(self, s, p):
        return (f"{label(s['series'])}: non-increasing over steps {', '.join(map(str, p['steps']))}"
                f" (slack {num(p['slack'])} points)")

    def check(self, records, s, p):
        series = [value_of(records, {**s["series"], "step": step}) for step in p["steps"]]
        text = " > ".join(num(v) for v in series)
        if any(v is None for v in series):
            return False, text
        return all(later <= earlier + p["slack"] for earlier, later in pairwise(series)), text
