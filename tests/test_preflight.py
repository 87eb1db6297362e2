"""The pre-flight: every prompt of every split encoded before anything trains; what cannot fit is refused in
one line that names it, and `run` / `all` do not start."""

from __future__ import annotations

import pytest
from small_model import MICRO

from repro.cli import main

SETS = [arg for override in MICRO for arg in ("--set", override)]


def test_the_report_names_every_part_and_passes_a_run_that_fits(tmp_path, capsys):
    assert main(["preflight", *SETS, "--units", str(tmp_path / "units")]) == 0
    out = capsys.readouterr().out
    for part in ("data", "people questions (eval)", "MMBench questions (eval)", "fictional examples (train)",
                 "celebrity examples (train)", "gpu", "disk", "no problems found"):
        assert part in out, part


def test_an_mmbench_hint_the_context_cannot_hold_is_refused_before_anything_trains(tmp_path, capsys):
    """Long hints (as MMBench dev-en's) against a 128-token context: the pre-flight names each question,
    and `run` stops with the same lines before it writes a unit."""
    long = [*SETS, "--set", "world.long_hints=1.0"]
    assert main(["preflight", *long, "--units", str(tmp_path / "units")]) == 1
    out = capsys.readouterr().out
    problem = next(line for line in out.splitlines() if line.startswith("- MMBench question"))
    assert "tokens, over the evaluation limit (context 128)" in problem
    assert main(["run", "finetuned", "--method", "ga", *long, "--out", str(tmp_path / "run"), "--units", str(tmp_path / "units")]) == 2
    err = capsys.readouterr().err
    assert "preflight found what would stop the run" in err and "- MMBench question" in err
    assert not (tmp_path / "units").exists(), "nothing was trained"


def test_a_training_example_over_model_max_length_is_named_with_its_person(tmp_path, capsys):
    assert main(["preflight", *SETS, "--set", "model.max_length=20", "--units", str(tmp_path / "units")]) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "training example" in line)
    assert line.startswith("- Full_Set/") and "raise model.max_length to at least" in line


@pytest.mark.parametrize(("driver", "refused"), [("535.104.05", True), ("580.65.06", False)])
def test_an_old_nvidia_driver_is_one_line(monkeypatch, driver, refused):
    from repro.experiments import preflight as pf_mod

    monkeypatch.setattr(pf_mod.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(pf_mod.torch.cuda, "mem_get_info", lambda: (70 * 2**30, 80 * 2**30))
    monkeypatch.setattr(pf_mod.torch.cuda, "get_device_name", lambda *_: "NVIDIA H100")
    monkeypatch.setattr(pf_mod.torch.version, "cuda", "13.0")
    monkeypatch.setattr(pf_mod, "driver_version", lambda: driver)
    report = pf_mod.Preflight()
    pf_mod._gpu(report, pytest.importorskip("repro.choices").load_profile("llava-1.5-13b"))
    assert any("NVIDIA driver 535.104.05 is older than 580" in p for p in report.problems) == refused
    assert "70.0 of 80.0 GiB free" in report.lines[0]


@pytest.mark.parametrize(("free_gib", "checkpointing", "advice"), [
    (40, False, "--set model.gradient_checkpointing=true"),
    (80, False, None),
    (40, True, None),
    (20, True, "a GPU with more memory"),
])
def test_a_gpu_too_small_for_the_13b_protocol_gets_the_setting_that_fits(monkeypatch, free_gib, checkpointing, advice):
    from repro.choices import load_profile
    from repro.experiments import preflight as pf_mod

    monkeypatch.setattr(pf_mod.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(pf_mod.torch.cuda, "mem_get_info", lambda: (free_gib * 2**30, 80 * 2**30))
    monkeypatch.setattr(pf_mod.torch.cuda, "get_device_name", lambda *_: "NVIDIA A100")
    monkeypatch.setattr(pf_mod, "driver_version", lambda: None)
    report = pf_mod.Preflight()
    profile = load_profile("llava-1.5-13b", [f"model.gradient_checkpointing={str(checkpointing).lower()}"])
    pf_mod._gpu(report, profile, params=13_350_000_000)  # LLaVA-1.5-13B's parameters
    assert [advice in p for p in report.problems] == ([True] if advice else [])
