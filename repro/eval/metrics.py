"""Accuracy (percent) from predictions: overall, per modality, per person, per MMBench category."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from repro.data.circular import groups_correct
from repro.eval.items import Item

CHANCE = 25.0  # four options


def _pct(hits: int, n: int) -> float:
    return 100.0 * hits / n if n else float("nan")


def accuracy_by(items: Sequence[Item], preds: Mapping[str, str], key) -> dict[str, tuple[float, int]]:
    """{group: (accuracy %, n)} for the groups `key(item)` returns."""
    hits: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for it in items:
        g = key(it)
        total[g] += 1
        hits[g] += preds.get(it.uid, "") == it.answer
    return {g: (_pct(hits[g], total[g]), total[g]) for g in sorted(total)}


def modality_accuracy(items: Sequence[Item], preds: Mapping[str, str]) -> dict[str, tuple[float, int]]:
    """{"all": .., "multimodal": .., "text": ..}; a modality with no items is left out."""
    out = {"all": accuracy_by(items, preds, lambda it: "all").get("all", (float("nan"), 0))}
    out.update(accuracy_by(items, preds, lambda it: it.modality))
    return out


def person_accuracy(items: Sequence[Item], preds: Mapping[str, str]) -> dict[str, float]:
    return {p: acc for p, (acc, _) in accuracy_by(items, preds, lambda it: it.person).items()}


def circular_accuracy(items: Sequence[Item], preds: Mapping[str, str]) -> tuple[float, int]:
    """MMBench circular (repro/data/circular.py): a question counts only if every copy is answered correctly."""
    ok = groups_correct(items, lambda it: int(it.uid), lambda it: it.answer, {int(u): p for u, p in preds.items()})
    return _pct(sum(ok.values()), len(ok)), len(ok)
