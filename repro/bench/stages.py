"""(d) The wall time of each stage of `pulse-repro all`, as that run wrote it (RUN_DIR/stages.json)."""

from __future__ import annotations

import json
from pathlib import Path

from repro.errors import ReproError


def stage_seconds(run_dir: Path | None) -> dict[str, float] | None:
    if run_dir is None:
        return None
    path = run_dir / "stages.json"
    if not path.exists():
        raise ReproError(f"{path} does not exist: give the directory of a finished `pulse-repro all` run")
    return json.loads(path.read_text())
