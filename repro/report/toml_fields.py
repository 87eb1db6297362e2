"""Typed reads of a golden file's TOML entries, each error naming the file, the entry and the key."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from repro.errors import ReproError

REQUIRED = object()  # a key without a default
TYPE_NAMES = {str: "string", dict: "table", list: "list", int: "integer", bool: "boolean"}  # in TOML's words


def entry_error(path: Path, where: str, message: str) -> ReproError:
    return ReproError(f"{path}: {where}: {message}")


def get(entry: dict, key: str, types: type | tuple[type, ...], path: Path, where: str, default: Any = REQUIRED):
    if key not in entry:
        if default is REQUIRED:
            raise entry_error(path, where, f"missing key {key!r}")
        return default
    value = entry[key]
    numeric = types is float
    if (numeric and isinstance(value, bool)) or not isinstance(value, (int, float) if numeric else types):
        name = "number" if numeric else TYPE_NAMES.get(types, getattr(types, "__name__", str(types)))
        raise entry_error(path, where, f"key {key!r} must be a {name}, got {value!r}")
    if numeric:
        value = float(value)
        if math.isnan(value) or math.isinf(value):
            raise entry_error(path, where, f"key {key!r} must be finite, got {value!r}")
    if isinstance(value, str) and key in ("name", "source", "kind") and not value.strip():
        raise entry_error(path, where, f"key {key!r} must not be empty")
    return value


def check_keys(entry: dict, allowed: Iterable[str], path: Path, where: str) -> None:
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        raise entry_error(path, where, f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
