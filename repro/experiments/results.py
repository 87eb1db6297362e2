"""`results.jsonl`: append-only, one complete record per line; a torn last line is dropped on read."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from repro.errors import ReproError
from repro.jsonl import AppendLog, read_jsonl, read_jsonl_lines

RECORD_FIELDS = ("experiment", "method", "target", "step", "split", "modality", "accuracy", "n",
                 "profile", "seed")
IDENTITY = ("experiment", "method", "target", "step", "split", "modality")


def _complete(record: dict) -> bool:
    return all(f in record for f in RECORD_FIELDS)


def read_results(path: Path) -> list[dict]:
    """The complete records, as a running protocol reads its own file to resume (never judged: see
    `checked_results`)."""
    return [r for r in read_jsonl(path) if _complete(r)]


EXPERIMENTS = ("finetuned", "pretrained", "sustainability", "modality")
MODALITIES = ("all", "multimodal", "text")
# Intervals are written rounded (one decimal), the accuracy too: a rounding apart is not a contradiction.
TOLERANCE = 0.051


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def record_problem(record: dict) -> str | None:
    """What makes a results record impossible (None when nothing does): a missing field, an unknown
    experiment or modality, an accuracy outside [0, 100] or outside its own interval, a negative count."""
    missing = [f for f in RECORD_FIELDS if f not in record]
    if missing:
        return f"no {', '.join(missing)}"
    if record["experiment"] not in EXPERIMENTS:
        return f"experiment {record['experiment']!r} is none of {', '.join(EXPERIMENTS)}"
    if record["modality"] not in MODALITIES:
        return f"modality {record['modality']!r} is none of {', '.join(MODALITIES)}"
    for field in (f for f in ("step", "n", "clusters") if f in record):  # clusters: records may lack it
        value = record[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{field} {value!r} is not a count"
    accuracy = record["accuracy"]
    if not _number(accuracy) or not 0 <= accuracy <= 100:
        return f"accuracy {accuracy!r} is not a percentage in [0, 100]"
    low, high = record.get("ci_low"), record.get("ci_high")
    if (low is not None or high is not None) and not (
            _number(low) and _number(high) and low - TOLERANCE <= accuracy <= high + TOLERANCE):
        return f"accuracy {accuracy!r} is outside its own interval [{low!r}, {high!r}]"
    return None



def checked_results(path: Path) -> tuple[list[dict], list[str], str | None]:
    """(records, problems, notice) of a results file as a judge reads it: every line not a record, and every
    impossible record, is a problem naming file:line; a torn last line is only a notice (a run still
    writing, or killed mid-write)."""
    lines, bad, torn = read_jsonl_lines(path)
    found = [(n, "not a JSON record") for n in bad]
    records = []
    for number, record in lines:
        problem = record_problem(record)
        if problem:
            found.append((number, problem))
        else:
            records.append(record)
    problems = [f"{path}:{n}: {problem}" for n, problem in sorted(found)]
    notice = f"{path}: the last line is torn (a run writing it, or killed mid-write) and left out" if torn else None
    return records, problems, notice


def judged_results(path: Path) -> list[dict]:
    """The records of a results file for `report` and `verify`: any problem refuses the file in one line
    (the first problems named), a torn last line is a notice on stderr."""
    records, problems, notice = checked_results(path)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ReproError(f"{len(problems)} bad record(s): {'; '.join(problems[:3])}{more}")
    if notice:
        print(f"pulse-repro: note: {notice}", file=sys.stderr)
    return records


class ResultsFile(AppendLog):
    """Appends records, skipping any whose identity a previous (interrupted) run already wrote."""

    def __init__(self, path: Path):
        super().__init__(path, lambda r: tuple(r[f] for f in IDENTITY), _complete)
