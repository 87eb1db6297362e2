"""A profile's numbers, checked against the values they can take before any work starts: a negative or NaN
learning rate trains nothing sensible, and zero bootstrap resamples give intervals of nothing; each is
refused in one line naming the setting (the names themselves: repro/choices.py)."""

from __future__ import annotations

import math

from repro.config import Profile
from repro.errors import ConfigError

# Learning rates: finite and above 0. Counts: at least the value given (0 where none is a choice: no
# pre-training, zero-shot).
POSITIVE_FLOATS = ("pretrain.lr", "finetune.lr", "unlearn.lr")
AT_LEAST = {
    "pretrain.steps": 0, "pretrain.batch_size": 1, "pretrain.warmup": 0,
    "finetune.epochs": 1, "finetune.batch_size": 1, "finetune.grad_accum": 1, "finetune.lora_r": 1,
    "unlearn.epochs": 1, "unlearn.batch_size": 1, "unlearn.grad_accum": 1,
    "model.max_length": 1,
    "eval.generate_tokens": 1, "eval.shots": 0, "eval.bootstrap_resamples": 1,
}


def _value(profile: Profile, key: str):
    table, name = key.split(".")
    return getattr(getattr(profile, table), name)


def check_value_ranges(profile: Profile) -> None:
    """Raise ConfigError, naming the setting and what it may be, for the first value out of its range."""
    for key in POSITIVE_FLOATS:
        value = _value(profile, key)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ConfigError(f"{key} {value!r}: must be a finite number above 0")
    for key, lowest in AT_LEAST.items():
        value = _value(profile, key)
        if value < lowest:
            raise ConfigError(f"{key} {value!r}: must be at least {lowest}")
    dropout = profile.finetune.lora_dropout
    if not (0 <= dropout < 1):
        raise ConfigError(f"finetune.lora_dropout {dropout!r}: must be in [0, 1)")
