"""Append-only JSON-lines files (results.jsonl, units.jsonl): one complete record per line, flushed to disk
as it is written; a torn last line (a crash mid-write) is dropped on read and cut before the next append."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Hashable
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    """Every whole record of `path` (none when it does not exist); safe to read while a run appends. A line
    that is not a record (a torn one from a crash mid-write, or one being written) is never data."""
    return [record for _, record in read_jsonl_lines(path)[0]]


def read_jsonl_lines(path: Path) -> tuple[list[tuple[int, dict]], list[int], bool]:
    """(line number, record) of every whole record of `path`; the numbers of the other non-empty lines; and
    whether the last line is torn (not a record, no newline after it: a run writing it, or killed mid-write),
    which is not among the others."""
    if not path.exists():
        return [], [], False
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    records, bad = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append((number, record))
        else:
            bad.append(number)
    torn = bool(bad) and not text.endswith("\n") and bad[-1] == len(lines)
    return records, bad[:-1] if torn else bad, torn


class AppendLog:
    """Appends records, skipping any whose identity the file already holds (a resumed run offers them again)."""

    def __init__(self, path: Path, identity: Callable[[dict], Hashable], valid: Callable[[dict], bool] = bool):
        self.path, self.identity = path, identity
        path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        self.seen = {identity(r) for r in read_jsonl(path) if valid(r)}

    def _repair(self) -> None:
        """Cut a torn last line, so the next append starts on a fresh line."""
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                self.path.write_bytes(data[: data.rfind(b"\n") + 1])

    def append(self, records: list[dict]) -> None:
        new, ids = [], set()
        for record in records:
            rid = self.identity(record)
            if rid not in self.seen and rid not in ids:
                new.append(record)
                ids.add(rid)
        if not new:
            return
        with self.path.open("a") as fh:
            fh.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in new))
            fh.flush()
            os.fsync(fh.fileno())
        self.seen |= ids
