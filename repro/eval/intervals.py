"""How sure a measured accuracy is: a percentile bootstrap over clusters (Efron & Tibshirani 1993, ch. 13).

The questions about one person rise and fall together (a model that knows a person answers most of their
questions), so a people split is resampled by person: every question of a drawn person comes along. MMBench
is resampled by question, or by circular group under circular evaluation. A record keeps its clusters'
counts (`per_cluster`: {cluster: [correct, asked]}), so every interval, and every comparison between records,
is recomputed from saved predictions in seconds.

Two records over the same clusters (the same people before and after a request, Text and Multi of the same
people, two update targets) draw the same resamples: their comparison is paired. Records over other
clusters draw independently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from repro.eval.items import Item
from repro.hashing import key_of

LEVEL = 0.95


def cluster_counts(items: Sequence[Item], preds: Mapping[str, str], cluster: Callable[[Item], str],
                   correct: Callable[[Item], bool] | None = None) -> dict[str, list[int]]:
    """{cluster: [correct, asked]} over `items`; `correct` defaults to the prediction equalling the answer."""
    correct = correct or (lambda it: preds.get(it.uid, "") == it.answer)
    return cluster_sums(items, lambda it: int(bool(correct(it))), cluster)


def cluster_sums(items: Sequence[Item], score: Callable[[Item], float], cluster: Callable[[Item], str]
                 ) -> dict[str, list]:
    """{cluster: [summed score, asked]} over `items`, each item's score in [0, 1] (1 or 0 for right or wrong;
    a ROUGE-L F-measure for a generated answer). Float sums are rounded to 6 places, as the record keeps them."""
    out: dict[str, list] = {}
    for it in items:
        counts = out.setdefault(cluster(it), [0, 0])
        counts[0] += score(it)
        counts[1] += 1
    for counts in out.values():
        if isinstance(counts[0], float):
            counts[0] = round(counts[0], 6)
    return out


def resample_indices(clusters: Sequence[str], resamples: int, seed: int) -> np.ndarray:
    """(resamples, k) indices into the sorted clusters, drawn with replacement; the same clusters and seed
    always draw the same indices (what pairs two records over the same people)."""
    ids = sorted(clusters)
    rng = np.random.default_rng(int(key_of(ids, seed)[:12], 16))
    return rng.integers(0, len(ids), size=(resamples, len(ids)))


def bootstrap(per_cluster: Mapping[str, Sequence[int]], resamples: int, seed: int) -> np.ndarray:
    """The accuracy (percent) of each resample."""
    ids = sorted(per_cluster)
    hits = np.array([per_cluster[c][0] for c in ids], dtype=float)
    asked = np.array([per_cluster[c][1] for c in ids], dtype=float)
    idx = resample_indices(ids, resamples, seed)
    return 100.0 * hits[idx].sum(1) / asked[idx].sum(1)


def percentile_interval(draws: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def interval_fields(per_cluster: dict[str, list[int]], resamples: int, seed: int) -> dict:
    """The record fields of an accuracy's 95% interval: ci_low, ci_high, clusters, per_cluster."""
    if not per_cluster:
        return {"ci_low": None, "ci_high": None, "clusters": 0, "per_cluster": {}}
    low, high = percentile_interval(bootstrap(per_cluster, resamples, seed))
    return {"ci_low": round(low, 4), "ci_high": round(high, 4), "clusters": len(per_cluster),
            "per_cluster": per_cluster}


def measured(items: Sequence[Item], preds: Mapping[str, str], cluster: Callable[[Item], str], resamples: int,
             seed: int, score: Callable[[Item, str], float] | None = None) -> dict:
    """A record's accuracy (percent), n (questions) and interval fields, clustered by `cluster`. `score` gives
    one answer's score in [0, 1] from the item and its prediction (default: 1 when it is the answer); the
    record's `accuracy` is then the mean score in percent."""
    per_cluster = (cluster_counts(items, preds, cluster) if score is None
                   else cluster_sums(items, lambda it: score(it, preds.get(it.uid, "")), cluster))
    hits, asked = sum(h for h, _ in per_cluster.values()), sum(n for _, n in per_cluster.values())
    accuracy = 100.0 * hits / asked if asked else float("nan")
    return {"accuracy": round(accuracy, 4), "n": asked, **interval_fields(per_cluster, resamples, seed)}
