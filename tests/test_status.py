"""`pulse-repro status RUN_DIR` on a run killed midway: what is measured, what is left, an estimate from the
units made, a torn last line skipped, nothing written; and a chain that diverged is not waited for."""

from __future__ import annotations

import json

from repro.choices import load_profile
from repro.cli import main
from repro.experiments.status import run_status


def _run_dir(tmp_path, records, units, torn=""):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "profile.json").write_text(json.dumps(load_profile("tiny").to_dict()))
    fields = {"split": "unlearn", "modality": "all", "accuracy": 50.0, "n": 10, "profile": "tiny", "seed": 0}
    (run_dir / "results.jsonl").write_text(
        "".join(json.dumps({"experiment": e, "method": m, "target": t, "step": s, **fields}) + "\n"
                for e, m, t, s in records) + torn)
    (run_dir / "units.jsonl").write_text("".join(json.dumps(u) + "\n" for u in units))
    return run_dir


def test_a_run_killed_midway_says_what_is_left_and_about_how_long(tmp_path):
    done = [("finetuned", m, "proj+llm", s) for m in ("ga", "ga_klr") for s in (0, 1)]
    units = ([{"kind": "finetuned", "key": "f", "made": True, "wall_s": 100.0}]
             + [{"kind": "request", "key": f"r{i}", "made": True, "wall_s": 10.0} for i in range(2)]
             + [{"kind": "predictions", "key": f"p{i}", "made": True, "wall_s": 1.0} for i in range(4)])
    run_dir = _run_dir(tmp_path, done, units, torn='{"experiment": "finetuned", "meth')
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    text = run_status(run_dir, now=(run_dir / "results.jsonl").stat().st_mtime + 120)
    lines = text.splitlines()
    assert lines[0] == f"run {run_dir} (profile tiny, seed 0): 4 of 34 measurements done"
    rows = {tuple(line.split()[:3]): line.split()[3] for line in lines if line.split()[:1] in (
        ["finetuned"], ["pretrained"], ["sustainability"], ["modality"])}
    assert rows[("finetuned", "ga", "proj+llm")] == "2/2" and rows[("finetuned", "npo", "proj+llm")] == "0/2"
    assert rows[("sustainability", "npo", "proj+llm")] == "0/6" and rows[("modality", "ga", "llm")] == "0/2"
    # 30 measurements and 21 requests left (npo 1, pretrained 3, sustainability 15, modality 2): 21 x 10 s + 30 x (4 s of predictions over 4 measurements)
    assert ("left: 30 measurements, up to 21 unlearning requests (those another run made are found in the store): "
            "about 4 min, from this run's means (10 s a request, 1 s a measurement)") in lines
    assert "units: 0 base made, 1 finetuned made, 2 request made, 4 predictions made" in text
    assert lines[-1] == "last written 2 min ago"
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before  # read-only


def test_a_diverged_chain_is_not_waited_for(tmp_path):
    done = [("sustainability", "ga", "proj+llm", s) for s in (0, 1, 2)]
    run_dir = _run_dir(tmp_path, done, [])
    (run_dir / "diverged.jsonl").write_text(json.dumps(
        {"experiment": "sustainability", "method": "ga", "target": "proj+llm", "request": 3}) + "\n")
    text = run_status(run_dir)
    row = next(line for line in text.splitlines() if line.startswith("sustainability  ga "))
    assert row.split()[3] == "3/3" and row.endswith("diverged at request 3")
    assert "3 of 31 measurements done" in text
    assert "no estimate until this run has made a request" in text


def test_status_of_a_parent_of_seeds_and_of_no_run(tmp_path, capsys):
    for seed in (0, 1):
        (tmp_path / f"seed-{seed}").mkdir()
        (tmp_path / f"seed-{seed}" / "profile.json").write_text(json.dumps(load_profile("tiny").to_dict()))
    assert main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("0 of 34 measurements done") == 2
    assert main(["status", str(tmp_path / "nothing")]) == 2
    assert "not a run directory (no profile.json)" in capsys.readouterr().err


def test_a_finished_run_has_nothing_left(tmp_path):
    run_dir = _run_dir(tmp_path, [], [])
    (run_dir / "stages.json").write_text("{}")
    text = run_status(run_dir)
    assert "finished (stages.json written)" in text and "left:" not in text and "last written" not in text
