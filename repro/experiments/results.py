"""`results.jsonl`: append-only, one complete record per line; a torn last line is dropped on read."""

from __future__ import annotations

import json
import os
from pathlib import Path

RECORD_FIELDS = ("experiment", "method", "target", "step", "split", "modality", "accuracy", "n",
                 "profile", "seed")
IDENTITY = ("experiment", "method", "target", "step", "split", "modality")


def read_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line from a crash mid-write: never data
        if isinstance(record, dict) and all(f in record for f in RECORD_FIELDS):
            records.append(record)
    return records


class ResultsFile:
    """Appends records, skipping any whose identity a previous (interrupted) run already wrote."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        self.seen = {tuple(r[f] for f in IDENTITY) for r in read_results(path)}

    def _repair(self) -> None:
        """Cut a torn last line, so the next append starts on a fresh line."""
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                self.path.write_bytes(data[: data.rfind(b"\n") + 1])

    def append(self, records: list[dict]) -> None:
        new = [r for r in records if tuple(r[f] for f in IDENTITY) not in self.seen]
        if not new:
            return
        with self.path.open("a") as fh:
            fh.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in new))
            fh.flush()
            os.fsync(fh.fileno())
        self.seen.update(tuple(r[f] for f in IDENTITY) for r in new)
