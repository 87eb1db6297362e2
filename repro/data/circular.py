"""MMBench's evaluation rules, in one place (MMBench, Liu et al. 2024, and VLMEvalKit's circular evaluation):

- a question's circular copies have index i + k * 1,000,000 (its options rotated by k); they form its group;
- single pass: the original of each group (index < 1,000,000) is scored alone (the paper's 75.1 fits it);
- circular: a group counts as correct only if every copy in it is answered correctly;
- a question without a prediction is answered wrongly, in both (a model that says nothing scores nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")

CIRCULAR_STRIDE = 1_000_000


def group_of(index: int) -> int:
    return index % CIRCULAR_STRIDE


def is_original(index: int) -> bool:
    return index < CIRCULAR_STRIDE


def single_pass(rows: Iterable[T], index: Callable[[T], int]) -> list[T]:
    """The original of every group, in order."""
    return [r for r in rows if is_original(index(r))]


def groups_correct(rows: Iterable[T], index: Callable[[T], int], answer: Callable[[T], str],
                   preds: Mapping[int, str]) -> dict[int, bool]:
    """{group: every copy answered correctly}; `preds` maps a row's index to its predicted letter."""
    out: dict[int, bool] = {}
    for r in rows:
        i = index(r)
        out[group_of(i)] = out.get(group_of(i), True) and preds.get(i, "") == answer(r)
    return out
