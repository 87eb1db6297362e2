"""`pulse-repro data check`: validate a source by reading it fully, and count what it holds."""

from __future__ import annotations

from repro.data.mllmu import count_mllmu
from repro.data.mmbench import count_mmbench
from repro.data.source import resolve_source
from repro.hub import DATA_FILES


def check_source(kind: str, spec: str) -> dict:
    path = resolve_source(spec, kind, DATA_FILES[kind])  # from the hub, the files a run reads
    return count_mllmu(path) if kind == "mllmu" else count_mmbench(path)
