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

import numpy as np

from repro.eval.intervals import percentile_interval
from repro.registry import Registry
from repro.report.evidence import Evidence
from repro.report.toml_fields import REQUIRED, entry_error, get
from repro.report.wording import common, diff, label, num, ratio, ratio_label


@dataclass(frozen=True)
class Judgement:
    """A claim (or one part of it) against its interval: PASS when the whole 95% interval of its margin is
    on the claim's side, FAIL when the whole of it is on the other side, INCONCLUSIVE otherwise."""

    verdict: str  # "PASS", "FAIL" or "INCONCLUSIVE"
    text: str  # what was measured

    @staticmethod
    def missing(text: str = "missing") -> Judgement:
        return Judgement(FAIL, text)


PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"


def judge(point: float, draws: np.ndarray, strict: bool) -> str:
    """The verdict of a margin (the claim holds when margin > 0, or >= 0 unless `strict`)."""
    finite = draws[np.isfinite(draws)]
    low, high = percentile_interval(finite) if finite.size else (point, point)
    low, high = min(low, point), max(high, point)  # the point is inside its own interval
    if low > 0 or (low == 0 and not strict):
        return PASS
    if high < 0 or (high == 0 and strict):
        return FAIL
    return INCONCLUSIVE


def combine(verdicts: list[str]) -> str:
    """All parts must pass; one failing part fails the whole; otherwise it is inconclusive."""
    return FAIL if FAIL in verdicts else INCONCLUSIVE if INCONCLUSIVE in verdicts else PASS


def interval_text(point: float, draws: np.ndarray, fmt=None) -> str:
    fmt = fmt or num
    finite = draws[np.isfinite(draws)]
    if not finite.size or finite.min() == finite.max():
        return fmt(point)
    low, high = percentile_interval(finite)
    return f"{fmt(point)} [{fmt(low)}, {fmt(high)}]"


def _ratio_draws(ev: Evidence, before: dict, after: dict) -> tuple[float | None, np.ndarray | None, str]:
    b, a = ev.value(before), ev.value(after)
    if b is None or a is None:
        return None, None, "missing"
    if b == 0 or math.isnan(a) or math.isnan(b):
        return None, None, f"undefined ({num(a)}/{num(b)})"
    draws = ev.ratio_draws(before, after)
    return round(a / b, 6), draws, interval_text(a / b, draws, ratio)


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

    def check(self, ev: Evidence, s: dict[str, dict], p: dict[str, Any]) -> Judgement:
        """The claim for selectors `s` (the `over` field filled in), against its interval."""
        raise NotImplementedError


CLAIM_KINDS: Registry[ClaimKind] = Registry("claim kind")


def register(kind: type[ClaimKind]) -> type[ClaimKind]:
    CLAIM_KINDS.add(kind.name, kind())
    return kind


class _RatioBound(ClaimKind):
    selectors = ("before", "after")
    params = (Number("threshold"),)
    op = ""
    sign = 1  # the margin is sign * (ratio - threshold)

    def describe(self, s, p):
        return f"{common(s['after'], s['before'])}: {ratio_label(s['after'], s['before'])} {self.op} {num(p['threshold'])}"

    def check(self, ev, s, p):
        value, draws, text = _ratio_draws(ev, s["before"], s["after"])
        if value is None:
            return Judgement.missing(text)
        return Judgement(judge(self.sign * (value - p["threshold"]), self.sign * (draws - p["threshold"]), False),
                         text)


@register
class RatioAtLeast(_RatioBound):
    """after/before >= threshold."""

    name, op, sign = "ratio_at_least", ">=", 1


@register
class RatioAtMost(_RatioBound):
    """after/before <= threshold."""

    name, op, sign = "ratio_at_most", "<=", -1


@register
class DropAtLeast(ClaimKind):
    """before - after >= points (accuracy points)."""

    name, selectors = "drop_at_least", ("before", "after")
    params = (Number("points", nonnegative=True),)

    def describe(self, s, p):
        return (f"{common(s['before'], s['after'])}: {diff(s['before'], s['after'])} - "
                f"{diff(s['after'], s['before'])} >= {num(p['points'])} points")

    def check(self, ev, s, p):
        b, a = ev.value(s["before"]), ev.value(s["after"])
        if b is None or a is None:
            return Judgement.missing()
        drop = round(b - a, 6)
        drops = ev.draws(s["before"]) - ev.draws(s["after"])
        return Judgement(judge(drop - p["points"], drops - p["points"], False),
                         f"{num(b)} -> {num(a)} (drop {interval_text(drop, drops)})")


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

    def check(self, ev, s, p):
        ra, da, ta = _ratio_draws(ev, s["a_before"], s["a_after"])
        rb, db, tb = _ratio_draws(ev, s["b_before"], s["b_after"])
        if ra is None or rb is None:
            return Judgement.missing(f"{ta} vs {tb}")
        if p["measure"] == "forgotten":
            ra, rb, da, db = round(1 - ra, 6), round(1 - rb, 6), 1 - da, 1 - db
        verdict = judge(rb - p["margin"] - ra, db - p["margin"] - da, True)
        return Judgement(verdict, f"{interval_text(ra, da, ratio)} vs {interval_text(rb, db, ratio)}")


@register
class LessThan(ClaimKind):
    """a < b - margin (accuracy points)."""

    name, selectors = "less_than", ("a", "b")
    params = (Number("margin", 0.0, nonnegative=True),)

    def describe(self, s, p):
        text = f"{common(s['a'], s['b'])}: {diff(s['a'], s['b'])} < {diff(s['b'], s['a'])}"
        return text + (f" - {num(p['margin'])} points" if p["margin"] else "")

    def check(self, ev, s, p):
        a, b = ev.value(s["a"]), ev.value(s["b"])
        if a is None or b is None:
            return Judgement.missing(f"{num(a)} vs {num(b)}")
        da, db = ev.draws(s["a"]), ev.draws(s["b"])
        return Judgement(judge(b - p["margin"] - a, db - p["margin"] - da, True),
                         f"{interval_text(a, da)} vs {interval_text(b, db)}")


@register
class NonIncreasing(ClaimKind):
    """The series at step k <= the series at step k-1 + slack, for consecutive steps."""

    name, selectors = "non_increasing", ("series",)
    params = (Steps(), Number("slack", 0.0, nonnegative=True))
    step_from_params = True

    def describe(self, s, p):
        return (f"{label(s['series'])}: non-increasing over steps {', '.join(map(str, p['steps']))}"
                f" (slack {num(p['slack'])} points)")

    def check(self, ev, s, p):
        selects = [{**s["series"], "step": step} for step in p["steps"]]
        series = [ev.value(sel) for sel in selects]
        text = " > ".join(num(v) for v in series)
        if any(v is None for v in series):
            return Judgement.missing(text)
        draws = [ev.draws(sel) for sel in selects]
        verdicts = [judge(earlier + p["slack"] - later, de + p["slack"] - dl, False)
                    for (earlier, de), (later, dl) in pairwise(zip(series, draws))]
        return Judgement(combine(verdicts), text)
