"""What no machine explains fails on every machine: on a CPU the golden file was not recorded on, a range
missed by a measured accuracy is ENV DIFFERS, but a missing record or a wrong protocol size (a count) is
FAIL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_run_files_errors import RECORD

from repro.report.verify import verify_run

CELL = 'experiment = "finetuned"\nmethod = "ga"\ntarget = "proj+llm"\nstep = 0\nsplit = "unlearn"\nmodality = "all"\n'
GOLDEN = f"""[golden]
profile = "tiny"
environments = [{{ device = "cpu", cpu_capability = "AVX512", threads = 2, cpu = "Recorder CPU (family 1, model 1)" }}]

[[number]]
name = "accuracy"
source = "test"
{CELL}min = 79.0
max = 81.0

[[number]]
name = "questions"
source = "test"
field = "n"
{CELL}min = 20.0
max = 20.0
"""


def _verdict(tmp_path: Path, records: list[dict], capsys) -> tuple[int, str]:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "profile.json").write_text(json.dumps({"name": "tiny", "seed": 0}))
    (run / "environment.json").write_text(json.dumps({"device": "cpu", "cpu_capability": "AVX512", "threads": 2,
                                                      "cpu": "Another CPU (family 2, model 2)"}))
    golden = tmp_path / "golden.toml"
    golden.write_text(GOLDEN)
    code = verify_run(run, golden)
    return code, capsys.readouterr().out


def test_a_measured_accuracy_outside_its_range_on_another_cpu_is_env_differs(tmp_path, capsys):
    code, out = _verdict(tmp_path, [{**RECORD, "accuracy": 75.0, "ci_low": 70.0, "ci_high": 80.0}], capsys)
    assert code == 0 and "ENV DIFFERS" in out


@pytest.mark.parametrize(("records", "name"), [
    ([{**RECORD, "step": 1}], "accuracy"),       # the pinned record is missing
    ([{**RECORD, "n": 19}], "questions"),       # the protocol's size is wrong
])
def test_a_missing_record_or_a_wrong_count_fails_on_another_cpu(records, name, tmp_path, capsys):
    code, out = _verdict(tmp_path, records, capsys)
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith(f"| {name} "))
    assert "FAIL" in row, row
