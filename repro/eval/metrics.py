"""Accuracy (percent) from predictions, per person: what the behaviour-based selection ranks celebrities by.
A record's accuracy and interval: repro/eval/intervals.py; MMBench's: repro/eval/benchmarks.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from repro.eval.intervals import cluster_counts
from repro.eval.items import Item

CHANCE = 25.0  # four options


def person_accuracy(items: Sequence[Item], preds: Mapping[str, str]) -> dict[str, float]:
    return {p: 100.0 * hits / asked for p, (hits, asked) in sorted(cluster_counts(items, preds, lambda it: it.person).items())}
