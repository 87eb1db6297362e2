"""Golden files that hold across instruction sets: `golden record` runs every seed under every instruction
set, derives ranges from all the runs and names the environments; `verify` fails a range only in one of
them, and a claim anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from repro.choices import load_profile
from repro.environment import (
    ISA_CAPS,
    NATIVE,
    differences,
    environment,
    isa_environment,
    isas_below,
    numeric_environment,
)
from repro.errors import ReproError
from repro.report.golden import load_golden
from repro.report.record import RecordedRun, covered_environments, number_ranges, record_golden
from repro.report.verify import verify_run
from repro.run_profile import run_bootstrap

SEL = {"experiment": "finetuned", "method": "ga", "target": "proj+llm", "step": 1, "split": "unlearn",
       "modality": "all"}


def env(capability: str, threads: int = 2) -> dict:
    return {"device": "cpu", "cpu_capability": capability, "threads": threads, "torch": "2.13.0+cpu",
            "transformers": "5.23.0", "peft": "0.21.2", "cpu": "AMD EPYC (family 26, model 2)"}


def record(accuracy: float, **fields) -> dict:
    return {**SEL, **fields, "accuracy": accuracy, "n": 500, "profile": "tiny", "seed": 0, "model": "m"}


def run(isa: str, seed: int, accuracy: float, **fields) -> RecordedRun:
    return RecordedRun(isa, seed, [record(accuracy, **fields)], env("AVX2" if isa == "avx2" else "AVX512"),
                       (1000, seed))


# ---- the environment --------------------------------------------------------------------------------


def test_environment_json_names_the_cpu_its_instruction_set_and_threads():
    e = environment()
    assert e["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert e["threads"] == torch.get_num_threads()
    assert e["cpu"] and e["device"] == "cpu"


def test_a_capped_process_dispatches_to_the_capped_instruction_set():
    """The caps take effect in a new process: torch there reports AVX2, whatever this CPU has."""
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    out = subprocess.run([sys.executable, "-c", code], env=isa_environment("avx2"), capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "AVX2"
    native = isa_environment(NATIVE, {**os.environ, **ISA_CAPS["avx2"]})
    assert not set(ISA_CAPS["avx2"]) & set(native), "native removes every cap"


def test_isas_a_machine_records_are_avx2_up_to_its_own():
    assert isas_below("AVX512") == ["avx2", NATIVE]
    assert isas_below("AVX2") == [NATIVE]


def test_differences_name_the_field_or_nothing():
    covered = [env("AVX2"), env("AVX512")]
    assert differences(env("AVX2"), covered) == []
    assert differences(env("AVX512"), covered) == []
    diffs = differences(env("DEFAULT"), covered)
    assert diffs == ["cpu_capability: DEFAULT (recorded: AVX2, AVX512)"]
    assert differences({**env("AVX2"), "threads": 16}, covered) == ["threads: 16 (recorded: 2)"]
    assert differences({}, covered)[0].startswith("device: not recorded")
    # another CPU with the same instruction set computes other floats: its ranges are not the recorded ones
    intel = "Intel(R) Xeon(R) Processor (family 6, model 143)"
    assert differences({**env("AVX512"), "cpu": intel}, covered) == [
        f"cpu: {intel} (recorded: AMD EPYC (family 26, model 2))"]


def test_a_run_directory_is_not_resumed_under_another_instruction_set(tmp_path):
    from repro.experiments.runner import Runner

    profile = load_profile("tiny")
    Runner(profile, tmp_path)  # claims the directory for this environment; a second start resumes it
    Runner(profile, tmp_path)
    (tmp_path / "environment.json").write_text(json.dumps({**numeric_environment(), "cpu_capability": "DEFAULT"}))
    with pytest.raises(ReproError, match="another numeric environment .cpu_capability: DEFAULT then"):
        Runner(profile, tmp_path)


# ---- recording ---------------------------------------------------------------------------------------


def test_ranges_cover_every_seed_under_every_instruction_set():
    runs = [run("avx2", 0, 10.0), run("avx2", 1, 14.0), run(NATIVE, 0, 20.0), run(NATIVE, 1, 12.0)]
    entries, unpinned, wide = number_ranges(runs, margin=1.0, max_spread=30.0)
    [rng] = [e for e in entries if e.get("field") != "n"]
    assert (rng["min"], rng["max"]) == (9.0, 21.0)
    assert rng["source"] == "4 runs"
    assert unpinned == [] and wide == []


def test_unpinned_and_wide_ranges_say_where_the_spread_comes_from():
    runs = [run("avx2", 0, 10.0), run("avx2", 1, 30.0), run(NATIVE, 0, 12.0), run(NATIVE, 1, 50.0)]
    _, unpinned, _ = number_ranges(runs, margin=1.0, max_spread=30.0)
    assert unpinned == [("finetuned_ga_proj_llm_1_unlearn_all (10.0..50.0): 38.0 points across seeds, "
                        "20.0 between instruction sets")]
    _entries, unpinned, wide = number_ranges(runs, margin=1.0, max_spread=45.0)
    assert unpinned == [] and len(wide) == 1 and wide[0].startswith("finetuned_ga_proj_llm_1_unlearn_all [9.0, 51.0]")
    missing = runs[:3] + [RecordedRun(NATIVE, 1, [], env("AVX512"), (1000, 1))]
    _, unpinned, _ = number_ranges(missing, margin=1.0, max_spread=45.0)
    assert unpinned == ["finetuned_ga_proj_llm_1_unlearn_all: not measured in AVX512 seed 1 (a request diverged)"]


def test_covered_environments_are_distinct_and_say_how_they_were_run():
    covered = covered_environments([run("avx2", 0, 1.0), run("avx2", 1, 1.0), run(NATIVE, 0, 1.0)])
    assert [(e["cpu_capability"], e["isa"]) for e in covered] == [("AVX2", "avx2"), ("AVX512", NATIVE)]


def fake_runner(values: dict[tuple[str, int], float], capability: dict[str, str]):
    """Stands in for a capped `pulse-repro all`: writes a run directory as one would."""
    calls = []

    def run_one(isa: str, seed: int, run_dir: Path, profile_args: list[str]) -> None:
        calls.append((isa, seed, profile_args))
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "results.jsonl").write_text(json.dumps(record(values[isa, seed])) + "\n")
        (run_dir / "environment.json").write_text(json.dumps(env(capability[isa])))
        (run_dir / "profile.json").write_text(json.dumps({"name": "tiny", "seed": seed, "eval": {"bootstrap_resamples": 200 + seed}}))
    return run_one, calls


def test_record_writes_ranges_over_all_runs_and_the_environments(tmp_path):
    values = {("avx2", 0): 40.0, ("avx2", 1): 44.0, (NATIVE, 0): 50.0, (NATIVE, 1): 41.0}
    run_one, calls = fake_runner(values, {"avx2": "AVX2", NATIVE: "AVX512"})
    out = tmp_path / "tiny.toml"
    record_golden(load_profile("tiny"), [0, 1], ["avx2", NATIVE], out, tmp_path / "runs", 2.0, 30.0, "cmd",
                  ["--profile", "tiny"], run_one)
    assert [(i, s) for i, s, _ in calls] == [("avx2", 0), ("avx2", 1), (NATIVE, 0), (NATIVE, 1)]
    golden = load_golden(out)
    assert golden.meta["instruction_sets"] == ["AVX2", "AVX512"]
    assert golden.meta["seeds"] == [0, 1]
    assert [e["cpu_capability"] for e in golden.environments] == ["AVX2", "AVX512"]
    assert golden.meta["runs"] == ["AVX2 seed 0", "AVX2 seed 1", "AVX512 seed 0", "AVX512 seed 1"]
    [rng] = [n for n in golden.numbers if n.field == "accuracy"]
    assert (rng.low, rng.high) == (38.0, 52.0)


def test_record_judges_each_runs_claims_as_verify_judges_that_run(tmp_path, monkeypatch):
    """A claim kept as holding in every run must hold when `pulse-repro verify` checks any of those runs: each
    run's claims are judged with its own profile's resamples and seed, as verify does."""
    import repro.report.record as record_mod

    judged = []
    real = record_mod.check_claim

    def spy(records, spec, resamples, seed):
        judged.append((records[0]["accuracy"], resamples, seed))
        return real(records, spec, resamples, seed)

    monkeypatch.setattr(record_mod, "check_claim", spy)
    run_one, _ = fake_runner({(NATIVE, 0): 40.0, (NATIVE, 3): 44.0}, {NATIVE: "AVX512"})
    record_golden(load_profile("tiny"), [0, 3], [NATIVE], tmp_path / "g.toml", tmp_path / "runs", 2.0, 30.0,
                  "cmd", [], run_one)
    assert set(judged) == {(40.0, 200, 0), (44.0, 203, 3)}
    assert run_bootstrap(tmp_path / "runs" / NATIVE / "seed-3") == (203, 3)


def test_record_refuses_a_cap_the_machine_did_not_take(tmp_path):
    run_one, _ = fake_runner({("avx512", 0): 1.0}, {"avx512": "AVX2"})
    with pytest.raises(ReproError, match="asked for avx512, torch dispatched to AVX2"):
        record_golden(load_profile("tiny"), [0], ["avx512"], tmp_path / "g.toml", tmp_path / "runs", 1.0, 30.0,
                      "cmd", [], run_one)


# ---- verifying in another environment ----------------------------------------------------------------

GOLDEN = """
[golden]
profile = "tiny"
environments = [{ device = "cpu", cpu_capability = "AVX2", threads = 2, torch = "2.13.0+cpu", transformers = "5.23.0", peft = "0.21.2", cpu = "AMD EPYC (family 26, model 2)" }]

[[number]]
name = "r"
source = "s"
experiment = "finetuned"
method = "ga"
target = "proj+llm"
step = 1
split = "unlearn"
modality = "all"
min = 10.0
max = 20.0

[[claim]]
name = "c"
source = "s"
kind = "drop_at_least"
before = { experiment = "finetuned", target = "proj+llm", step = 0, split = "unlearn", modality = "all" }
after = { experiment = "finetuned", target = "proj+llm", step = 1, split = "unlearn", modality = "all" }
points = 10
"""


def write_run(tmp_path: Path, after: float, before: float, environment: dict | None) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    records = [record(before, step=0), record(after, step=1)]
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if environment is not None:
        (run_dir / "environment.json").write_text(json.dumps(environment))
    return run_dir


@pytest.fixture
def golden(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(GOLDEN)
    return path


def test_a_range_missed_in_a_recorded_environment_fails(tmp_path, golden, capsys):
    assert verify_run(write_run(tmp_path, 25.0, 80.0, env("AVX2")), golden) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("Environment: one g.toml was recorded in")
    assert out.rstrip().splitlines()[-1] == "1 passed, 1 failed"


def test_a_range_missed_in_another_environment_is_reported_not_failed(tmp_path, golden, capsys):
    run_dir = write_run(tmp_path, 25.0, 80.0, env("AVX512"))
    assert verify_run(run_dir, golden) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("Environment differs") and "cpu_capability: AVX512 (recorded: AVX2)" in first
    row = next(line for line in out.splitlines() if line.startswith("| r "))
    assert "25.0" in row and "ENV DIFFERS" in row
    assert out.rstrip().splitlines()[-1] == ("1 passed, 0 failed, 1 outside ranges recorded in another "
                                             "environment (not failed)")
    assert verify_run(run_dir, golden, strict=True) == 1


def test_a_claim_fails_in_any_environment(tmp_path, golden, capsys):
    assert verify_run(write_run(tmp_path, 15.0, 20.0, env("AVX512")), golden) == 1
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == "1 passed, 1 failed"


def test_a_run_without_environment_json_is_another_environment(tmp_path, golden, capsys):
    assert verify_run(write_run(tmp_path, 25.0, 80.0, None), golden) == 0
    assert "device: not recorded" in capsys.readouterr().out.splitlines()[0]


def test_a_run_that_cannot_be_written_is_still_verified(tmp_path, golden, capsys):
    """A read-only run directory (an archive, a colleague's share): the verdict is printed, not written
    (simulated by a file where report/ would go, since root may write anywhere)."""
    run_dir = write_run(tmp_path, 15.0, 80.0, env("AVX2"))
    (run_dir / "report").write_text("")
    assert verify_run(run_dir, golden) == 0
    captured = capsys.readouterr()
    assert "verdict not written" in captured.err and captured.out.rstrip().endswith("2 passed, 0 failed")


def test_numeric_environment_is_what_golden_files_compare():
    assert differences(numeric_environment(), [numeric_environment()]) == []


def test_the_cached_base_model_is_per_instruction_set(monkeypatch):
    """A tiny base pre-trained under AVX-512 computes other floats than one pre-trained under AVX2: a capped
    run must pre-train its own, not load the other from the cache; nor share the other's units."""
    from repro.experiments import store

    paths, stores = set(), set()
    for tag in ("cpu-avx2", "cpu-avx512"):
        monkeypatch.setattr(store, "numeric_tag", lambda tag=tag: tag)
        paths.add(store.base_model_path("k"))
        stores.add(store.default_units_dir())
    assert len(paths) == 2 and len(stores) == 2


def test_mllmu_benchs_task_records_are_pinned_like_any_record_and_the_settings_recorded(tmp_path):
    from repro.config import read_profile
    from repro.report.golden import check_numbers, load_golden
    from repro.report.record import write_golden

    task = {"split": "unlearn_generation", "modality": "text"}
    runs = [run("avx2", 0, 5.3125, **task), run(NATIVE, 0, 7.5, **task)]
    entries, _, _ = number_ranges(runs, margin=1.0, max_spread=30.0)
    [rng] = [e for e in entries if e.get("field") != "n"]
    assert (rng["split"], rng["modality"], rng["min"], rng["max"]) == ("unlearn_generation", "text", 4.31, 8.5)
    profile = read_profile("tiny", ["eval.shots=1", 'eval.benchmarks=["mmbench","generation"]'])
    path = tmp_path / "g.toml"
    write_golden(path, profile, [0], runs, 1.0, 30.0, "pulse-repro golden record ...")
    golden = load_golden(path)
    assert golden.meta["eval"]["shots"] == 1 and golden.meta["eval"]["scoring"] == "option-loglik"
    assert all(v.passed for v in check_numbers([record(8.0, **task)], golden))
    assert not all(v.passed for v in check_numbers([record(9.0, **task)], golden))
