"""Boolean environment variables (PULSE_QUIET, HF_HUB_OFFLINE, ...), read as huggingface_hub reads its own."""

from __future__ import annotations

import os

TRUE = {"1", "true", "yes", "on"}


def flag_set(*names: str) -> bool:
    """Whether the first of `names` that is set says yes; unset or anything else is no."""
    value = next((os.environ[name] for name in names if name in os.environ), "")
    return value.strip().lower() in TRUE
