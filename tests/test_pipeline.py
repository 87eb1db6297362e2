"""The whole protocol on a micro profile: every experiment, method, step, split and modality is
recorded; a rerun resumes instead of redoing; the report is written."""

from __future__ import annotations

import json

import pytest
from small_model import MICRO

from repro.choices import load_profile
from repro.cli import main
from repro.experiments.results import read_results
from repro.experiments.runner import run_protocol

pytestmark = pytest.mark.slow  # the whole protocol end to end


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("micro") / "run"
    profile = load_profile("tiny", MICRO)
    run_protocol(profile, run_dir)
    return profile, run_dir


def test_every_cell_the_paper_reports_is_recorded(micro_run):
    _, run_dir = micro_run
    records = read_results(run_dir / "results.jsonl")
    have = {(r["experiment"], r["method"], r["target"], r["step"], r["split"], r["modality"]) for r in records}
    for experiment in ("finetuned", "pretrained"):
        for method in ("ga", "ga_klr", "npo"):
            for step in (0, 1):
                for split in ("unlearn", "retain"):
                    for modality in ("all", "multimodal", "text"):
                        assert (experiment, method, "proj+llm", step, split, modality) in have
                assert (experiment, method, "proj+llm", step, "mmbench", "all") in have
    for method in ("ga", "ga_klr", "npo"):
        for step in range(6):
            for split in ("unlearn", "retain", "shard_1", "shard_2", "shard_3", "shard_4", "shard_5"):
                assert ("sustainability", method, "proj+llm", step, split, "all") in have
            assert ("sustainability", method, "proj+llm", step, "mmbench", "all") in have
    for target in ("proj+llm", "llm"):
        for step in (0, 1):
            assert ("modality", "ga", target, step, "unlearn", "text") in have
    assert all(0.0 <= r["accuracy"] <= 100.0 for r in records)
    assert len(have) == len(records), "a cell was recorded twice"


def test_units_jsonl_lists_every_unit_of_the_run_with_what_it_was_made_from(micro_run):
    from repro.experiments.provenance import read_units

    _, run_dir = micro_run
    units = read_units(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    by_kind = {kind: [u for u in units if u["kind"] == kind] for kind in ("base", "finetuned", "request", "predictions")}
    assert len(by_kind["base"]) == 1 and len(by_kind["finetuned"]) == 1
    # every model a result was measured on is a unit of the run
    assert {r["model"] for r in read_results(run_dir / "results.jsonl")} <= {u["key"] for u in units}
    for unit in by_kind["finetuned"] + [u for u in by_kind["request"] if u["made"]]:
        for field in ("start", "seed", "torch_seed", "lora_init", "examples", "steps", "wall_s", "device", "dtype"):
            assert field in unit, (unit["kind"], field)
    assert by_kind["finetuned"][0]["people"] == manifest["fictional"]["pool"]
    chains = {}
    for unit in by_kind["request"]:
        assert {"method", "params", "target", "reference", "forget", "retain", "made"} <= set(unit)
        assert not set(unit["forget"]) & set(unit["retain"])
        if len(unit["forget"]) == 1:  # the sustainability chain's one-person shards
            chains.setdefault(unit["method"], []).append(unit)
    for chain in chains.values():
        assert [sorted(u["forget"]) for u in chain] == manifest["fictional"]["shards"]
        assert [u["start"] for u in chain[1:]] == [u["key"] for u in chain[:-1]]
    selected = sorted(manifest["celebrities"]["unlearn"])
    assert any(sorted(u["forget"]) == selected for u in by_kind["request"])  # the pretrained experiment
    assert "## What was run" in (run_dir / "report" / "tables.md").read_text()


def test_status_of_a_finished_run_has_nothing_left(micro_run):
    from repro.experiments.status import run_status

    _, run_dir = micro_run
    text = run_status(run_dir)
    assert "34 of 34 measurements done; finished" in text and "left:" not in text


def test_shard_sizes_and_counts_follow_the_profile(micro_run):
    _, run_dir = micro_run
    records = read_results(run_dir / "results.jsonl")
    shard = [r for r in records if r["split"] == "shard_1" and r["modality"] == "all"]
    assert {r["n"] for r in shard} == {10}  # one person, 10 questions
    unlearn = [r for r in records if r["experiment"] == "finetuned" and r["split"] == "unlearn"
               and r["modality"] == "all"]
    assert {r["n"] for r in unlearn} == {50}


def test_manifest_records_every_celebrity_score_and_disjoint_splits(micro_run):
    _, run_dir = micro_run
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(manifest["celebrities"]["scores"]) == 12
    fictional = manifest["fictional"]
    assert not set(fictional["unlearn"]) & set(fictional["retain"])
    assert sorted(k for s in fictional["shards"] for k in s) == sorted(fictional["unlearn"])


def test_report_writes_tables_and_figures(micro_run):
    _, run_dir = micro_run
    tables = (run_dir / "report" / "tables.md").read_text()
    assert "Figure 3" in tables and "Figure 4" in tables and "Table B" in tables
    assert (run_dir / "report" / "figure3.png").stat().st_size > 1000
    assert (run_dir / "report" / "figure4.png").stat().st_size > 1000


def test_rerun_resumes_without_duplicating_records(micro_run):
    profile, run_dir = micro_run
    before = (run_dir / "results.jsonl").read_text()
    run_protocol(profile, run_dir)
    assert (run_dir / "results.jsonl").read_text() == before


def test_run_dir_of_another_profile_is_refused(micro_run, capsys):
    _, run_dir = micro_run
    args = ["run", "finetuned", "--out", str(run_dir)]
    for override in MICRO + ["unlearn.lr=0.5"]:
        args += ["--set", override]
    assert main(args) == 2
    assert "another profile" in capsys.readouterr().err
