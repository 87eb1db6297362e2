"""General-ability benchmarks, measured beside D_retain before and after every request (generality, the
paper's MMBench): each is registered under the name its records carry as `split`, with where its items come
from, how answers are read and how accuracy is counted. A profile lists the ones it measures
(`eval.benchmarks`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from repro.config import EvalConfig
from repro.eval.items import Item
from repro.eval.metrics import circular_accuracy, modality_accuracy
from repro.registry import Registry


@dataclass(frozen=True)
class Benchmark:
    items: Callable[[Any], list[Item]]  # the run's data (repro/experiments/data.py) -> the items scored
    rule: Callable[[EvalConfig], str]  # the answer rule of letter scoring (repro/eval/answers.py)
    accuracy: Callable[[Sequence[Item], Mapping[str, str], EvalConfig], tuple[float, int]]


def _mmbench_accuracy(items: Sequence[Item], preds: Mapping[str, str], cfg: EvalConfig) -> tuple[float, int]:
    """Single pass, or circular over groups (repro/data/circular.py), as the profile says."""
    return circular_accuracy(items, preds) if cfg.mmbench_circular else modality_accuracy(items, preds)["all"]


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")
BENCHMARKS.add("mmbench", Benchmark(lambda data: data.mmbench_items(), lambda cfg: cfg.mmbench_answer,
                                    _mmbench_accuracy))
