"""`results.jsonl`: append-only, one complete record per line; a torn last line is dropped on read."""

from __future__ import annotations

from pathlib import Path

from repro.jsonl import AppendLog, read_jsonl

RECORD_FIELDS = ("experiment", "method", "target", "step", "split", "modality", "accuracy", "n",
                 "profile", "seed")
IDENTITY = ("experiment", "method", "target", "step", "split", "modality")


def _complete(record: dict) -> bool:
    return all(f in record for f in RECORD_FIELDS)


def read_results(path: Path) -> list[dict]:
    return [r for r in read_jsonl(path) if _complete(r)]


class ResultsFile(AppendLog):
    """Appends records, skipping any whose identity a previous (interrupted) run already wrote."""

    def __init__(self, path: Path):
        super().__init__(path, lambda r: tuple(r[f] for f in IDENTITY), _complete)
