"""results.jsonl as `report`, `verify` and `status` read it: a line that is not a record, or an impossible
record, is named by file:line (report and verify refuse the file, status warns); a torn last line is a
notice only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from one_line import one_line_error
from test_run_files_errors import RECORD

from repro.choices import load_profile
from repro.cli import main
from repro.experiments.results import checked_results, record_problem
from repro.experiments.status import run_status

BROKEN = [
    ({"accuracy": 140.0}, "accuracy 140.0"),
    ({"accuracy": -0.1}, "accuracy -0.1"),
    ({"accuracy": float("nan")}, "accuracy nan"),
    ({"accuracy": 95.0}, "outside its own interval"),
    ({"accuracy": 65.0}, "outside its own interval"),
    ({"n": -5}, "n -5"),
    ({"n": 2.5}, "n 2.5"),
    ({"step": -1}, "step -1"),
    ({"clusters": -2}, "clusters -2"),
    ({"experiment": "finetune"}, "experiment 'finetune'"),
    ({"modality": "audio"}, "modality 'audio'"),
    ({"ci_low": None, "ci_high": "x"}, "outside its own interval"),
]


@pytest.mark.parametrize(("change", "named"), BROKEN, ids=[n for _, n in BROKEN])
def test_an_impossible_record_is_named(change, named):
    assert named in (record_problem({**RECORD, **change}) or "")


def test_a_possible_record_passes_including_its_intervals_rounding():
    assert record_problem(RECORD) is None
    assert record_problem({**RECORD, "accuracy": 90.05, "ci_high": 90.0}) is None  # both written rounded
    assert record_problem({**RECORD, "accuracy": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 0}) is None
    missing = dict(RECORD)
    del missing["n"]
    assert "no n" in record_problem(missing)


def _run(tmp_path: Path, lines: list[str], end: str = "\n") -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "profile.json").write_text(json.dumps(load_profile("tiny").to_dict()))
    (run / "results.jsonl").write_text("\n".join(lines) + end)
    return run


def _line(**change) -> str:
    return json.dumps({**RECORD, **change})


def test_a_torn_last_line_is_a_notice_and_a_torn_middle_line_a_problem(tmp_path):
    run = _run(tmp_path, [_line(), '{"accuracy": 8', _line(step=1), '{"experi'], end="")
    records, problems, notice = checked_results(run / "results.jsonl")
    assert len(records) == 2
    assert problems == [f"{run / 'results.jsonl'}:2: not a JSON record"]
    assert notice and "torn" in notice


@pytest.mark.parametrize("command", ["report", "verify"])
def test_report_and_verify_refuse_a_file_with_an_impossible_record_in_one_line(command, tmp_path, capsys):
    run = _run(tmp_path, [_line(step=1), _line(accuracy=140.0)])
    assert main([command, str(run)]) == 2
    one_line_error(capsys, "results.jsonl:2: accuracy 140.0")


def test_status_warns_of_each_bad_line(tmp_path):
    run = _run(tmp_path, ["not json", _line(n=-5)])
    text = run_status(run)
    assert "results.jsonl:1: not a JSON record" in text and "results.jsonl:2: n -5 is not a count" in text
