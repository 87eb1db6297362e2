"""A run's records as evidence: each accuracy with its bootstrap resamples (repro/eval/intervals.py). The
same clusters draw the same resamples, so a comparison of two records over the same people is paired; a
record without clusters (the paper's own numbers) has no spread: its draws are its value."""

from __future__ import annotations

from typing import Any

import numpy as np

from repro.eval.intervals import bootstrap


def find(records: list[dict], select: dict[str, Any]) -> dict | None:
    """The first record matching every field of `select`."""
    return next((r for r in records if all(r.get(k) == v for k, v in select.items())), None)


def value_of(records: list[dict], select: dict[str, Any], fld: str = "accuracy") -> float | None:
    """The selected record's `fld`; None when there is no such record or its value is not a number."""
    value = (find(records, select) or {}).get(fld)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


class Evidence:
    def __init__(self, records: list[dict], resamples: int = 1000, seed: int = 0):
        self.records, self.resamples, self.seed = records, resamples, seed

    def value(self, select: dict[str, Any]) -> float | None:
        return value_of(self.records, select)

    def draws(self, select: dict[str, Any]) -> np.ndarray | None:
        """The accuracy's bootstrap resamples (percent); None when the record is missing."""
        value = self.value(select)
        if value is None:
            return None
        per_cluster = (find(self.records, select) or {}).get("per_cluster")
        if not per_cluster:
            return np.full(self.resamples, float(value))
        return bootstrap(per_cluster, self.resamples, self.seed)

    def ratio_draws(self, before: dict[str, Any], after: dict[str, Any]) -> np.ndarray | None:
        """after/before per resample, paired where the two records share their clusters."""
        b, a = self.draws(before), self.draws(after)
        if b is None or a is None:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            return a / b
