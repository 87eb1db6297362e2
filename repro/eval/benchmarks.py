"""General-ability benchmarks, measured beside D_retain before and after every request (generality, the
paper's MMBench): each is registered with where its items come from, how answers are read, and the records
it gives (a split name each, with its accuracy, n and interval). A profile lists the ones it measures
(`eval.benchmarks`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from repro.config import EvalConfig
from repro.data.circular import groups_correct, is_original
from repro.eval.intervals import interval_fields, measured
from repro.eval.items import Item
from repro.registry import Registry

# items, predictions, bootstrap resamples, seed -> {"accuracy", "n", "ci_low", "ci_high", "clusters", ...}
Score = Callable[[Sequence[Item], Mapping[str, str], int, int], dict]


@dataclass(frozen=True)
class Benchmark:
    items: Callable[[Any], list[Item]]  # the run's data (repro/experiments/data.py) -> the items scored
    rule: Callable[[EvalConfig], str]  # the answer rule of letter scoring (repro/eval/answers.py)
    records: dict[str, Score]  # split name -> its score, all from the same predictions


def _single_pass(items: Sequence[Item], preds: Mapping[str, str], resamples: int, seed: int) -> dict:
    """MMBench single pass: the originals, each question its own cluster (the paper's 75.1 fits it)."""
    return measured([it for it in items if is_original(int(it.uid))], preds, lambda it: it.uid, resamples, seed)


def _circular(items: Sequence[Item], preds: Mapping[str, str], resamples: int, seed: int) -> dict:
    """MMBench circular (VLMEvalKit, the leaderboard's): a group counts only if every copy is right; the
    clusters are the groups."""
    ok = groups_correct(items, lambda it: int(it.uid), lambda it: it.answer, {int(u): p for u, p in preds.items()})
    per_cluster = {str(g): [int(v), 1] for g, v in ok.items()}
    accuracy = 100.0 * sum(ok.values()) / len(ok) if ok else float("nan")
    return {"accuracy": round(accuracy, 4), "n": len(ok), **interval_fields(per_cluster, resamples, seed)}


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")
BENCHMARKS.add("mmbench", Benchmark(lambda data: data.mmbench_items(), lambda cfg: cfg.mmbench_answer,
                                    {"mmbench": _single_pass, "mmbench_circular": _circular}))
