"""A run directory or golden file that is malformed, or a path with a file in the way, gives one line naming
the file and the field (exit 2), never a traceback: status, report, verify and world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from one_line import one_line_error

from repro.cli import main
from repro.report.golden import GOLDEN_DIR

RECORD = {"accuracy": 80.0, "ci_high": 90.0, "ci_low": 70.0, "clusters": 2, "experiment": "finetuned",
          "method": "ga", "modality": "all", "model": "00dd044d3041e60a", "n": 20,
          "per_cluster": {"Full_Set/001": [8, 10], "Full_Set/002": [8, 10]}, "profile": "tiny", "seed": 0,
          "split": "unlearn", "step": 0, "target": "proj+llm"}


def _run(tmp_path: Path, profile: object) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text(json.dumps(RECORD) + "\n")
    (run / "profile.json").write_text(profile if isinstance(profile, str) else json.dumps(profile))
    return run


@pytest.mark.parametrize("command", ["status", "report", "verify"])
def test_a_profile_json_that_is_not_json_is_one_line(command, tmp_path, capsys):
    run = _run(tmp_path, '{"name": ')
    assert main([command, str(run)]) == 2
    one_line_error(capsys, "profile.json", "not JSON")


@pytest.mark.parametrize("value", ["many", 0, -5, 2.5, True])
@pytest.mark.parametrize("command", ["report", "verify"])
def test_bootstrap_resamples_that_are_not_a_count_are_one_line(command, value, tmp_path, capsys):
    run = _run(tmp_path, {"name": "tiny", "seed": 0, "eval": {"bootstrap_resamples": value}})
    assert main([command, str(run)]) == 2
    one_line_error(capsys, "profile.json", "eval.bootstrap_resamples")


def test_a_directory_given_as_the_golden_file_is_one_line(tmp_path, capsys):
    run = _run(tmp_path, {"name": "tiny", "seed": 0})
    assert main(["verify", str(run), "--golden", str(tmp_path)]) == 2
    one_line_error(capsys, str(tmp_path), "golden file")


def test_a_golden_file_of_another_profile_is_refused(tmp_path, capsys):
    run = _run(tmp_path, {"name": "tiny", "seed": 0})
    other = GOLDEN_DIR / "gemma-3-micro.toml"
    assert main(["verify", str(run), "--golden", str(other)]) == 2
    one_line_error(capsys, "'gemma-3-micro'", "'tiny'")


def test_a_file_where_the_report_goes_is_one_line(tmp_path, capsys):
    run = _run(tmp_path, {"name": "tiny", "seed": 0})
    (run / "report").write_text("")
    assert main(["report", str(run)]) == 2
    one_line_error(capsys, "report", "a file is in the way")


def test_world_out_a_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("")
    assert main(["world", "--out", str(target)]) == 2
    one_line_error(capsys, "a-file", "a file is in the way")
