"""Content keys: every unit of work is named by a hash of what it was made from."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def key_of(*parts: Any) -> str:
    """A short, stable hash of JSON-able parts (dataclasses converted by the caller)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def seed_from_key(key: str) -> int:
    """A torch seed derived from a unit's key: a unit's random draws (LoRA init, dropout) do not depend
    on which other units ran before it in this process, so a resumed run matches an uninterrupted one."""
    return int(key[:8], 16)


def identity(config: Any, added_later: tuple[str, ...] = ()) -> dict:
    """A config dataclass as a key part. Fields in `added_later` (options introduced after units were first
    keyed by this config) enter only when set away from their default, so adding an option does not
    re-key, and re-train, the units every existing run has made."""
    import dataclasses

    out = dataclasses.asdict(config)
    for f in dataclasses.fields(config):
        if f.name in added_later and out[f.name] == f.default:
            del out[f.name]
    return out
