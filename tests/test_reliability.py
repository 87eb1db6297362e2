"""Reliability on the MICRO profile (a whole protocol in seconds): a run killed at any point, SIGKILL
included, resumes to the same results.jsonl as an uninterrupted run; a torn last line is never data;
a diverging request is recorded and skipped; bad input is refused in one line with nothing overwritten;
the same seed gives the same results and another seed other splits."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from one_line import one_line_error
from processes import sigkill_when
from small_model import MICRO

from repro.choices import load_profile
from repro.cli import main
from repro.experiments import runner as runner_mod
from repro.experiments.results import IDENTITY, ResultsFile, read_results
from repro.experiments.runner import run_protocol
from repro.train import methods as methods_mod

ROOT = Path(__file__).resolve().parents[1]
SETS = [arg for override in MICRO for arg in ("--set", override)]


def micro_profile(*extra: str):
    return load_profile("tiny", [*MICRO, *extra])


def by_identity(path: Path) -> dict[tuple, float]:
    out = {}
    for r in read_results(path):
        ident = tuple(r[f] for f in IDENTITY)
        assert ident not in out, f"recorded twice: {ident}"
        out[ident] = r["accuracy"]
    return out


@pytest.fixture(scope="module", autouse=True)
def one_thread(tmp_path_factory):
    """One torch thread: on a small shared machine two threads fight and a MICRO run takes 30x longer.
    And a cache of this module's own: the thread count changes float reductions, so a base model that
    another module pre-trained with two threads would not match one pre-trained here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    mp = pytest.MonkeyPatch()
    mp.setenv("PULSE_CACHE", str(tmp_path_factory.mktemp("reliability-cache")))
    yield
    mp.undo()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, one_thread) -> Path:
    """An uninterrupted MICRO protocol run; it also warms the session's cache (world, base model)."""
    run_dir = tmp_path_factory.mktemp("clean") / "run"
    run_protocol(micro_profile(), run_dir, run_dir / "units")
    return run_dir


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
            "TQDM_DISABLE": "1"}


def _adapter_units(run_dir: Path) -> set[str]:
    return {p.name for p in (run_dir / "units").glob("adapter-*.safetensors")}


def assert_resumes_to_clean(run_dir: Path, clean: Path) -> None:
    from repro.train import recipes

    kept, trained = _adapter_units(run_dir), []
    with pytest.MonkeyPatch.context() as mp:  # count the unlearning requests the resume trains
        real = recipes.optimise

        def counted(*a, **kw):
            if str(a[8]).startswith("unlearn"):  # (params, batches, steps, loss, lr, warmup, schedule, accum, desc)
                trained.append(1)
            return real(*a, **kw)

        mp.setattr(recipes, "optimise", counted)
        run_protocol(micro_profile(), run_dir, run_dir / "units")  # the resume: same profile, same run directory
    # only the requests whose adapter was not yet written are trained again
    assert len(trained) == len(_adapter_units(run_dir) - kept)
    assert _adapter_units(run_dir) == _adapter_units(clean)
    assert by_identity(run_dir / "results.jsonl") == by_identity(clean / "results.jsonl")
    # Order cannot differ: the protocol's order is fixed and a resume appends only what is missing, in
    # that order. So the files match byte for byte (records carry no timestamps).
    assert (run_dir / "results.jsonl").read_bytes() == (clean / "results.jsonl").read_bytes()
    assert (run_dir / "manifest.json").read_text() == (clean / "manifest.json").read_text()


# ---------------------------------------------------------------- the torn last line


def test_torn_last_line_is_never_data_and_is_repaired(tmp_path):
    path = tmp_path / "results.jsonl"
    good = {"experiment": "finetuned", "method": "ga", "target": "proj+llm", "step": 0, "split": "unlearn",
            "modality": "all", "accuracy": 50.0, "n": 10, "profile": "tiny", "seed": 0, "model": "k"}
    torn = json.dumps({**good, "step": 1, "accuracy": 12.5})
    path.write_text(json.dumps(good) + "\n" + torn[: len(torn) // 2])
    assert read_results(path) == [good]
    # A cut that still parses as JSON (a record cut after its closing brace cannot happen, but a cut
    # number can): `{"accuracy": 1` is not valid JSON, and an incomplete record lacks fields.
    path.write_text(json.dumps(good) + "\n" + '{"experiment": "finetuned", "accuracy": 1')
    assert read_results(path) == [good]
    results = ResultsFile(path)
    assert path.read_text() == json.dumps(good) + "\n", "the torn tail is cut on resume"
    results.append([{**good, "step": 1, "accuracy": 12.5}])
    assert [r["step"] for r in read_results(path)] == [0, 1]
    assert path.read_text().count("\n") == 2 and path.read_text().endswith("\n")


# ---------------------------------------------------------------- interruption at several points

# Runs `pulse-repro all` in a child that SIGKILLs itself at a chosen point (deterministic kill points).
DRIVER = r"""
import os, signal, sys
import torch
torch.set_num_threads(1)
point, n = sys.argv[1], int(sys.argv[2])
calls = {"n": 0}

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

if point == "mid-finetune":
    from repro.train import recipes
    real = recipes.optimise
    def optimise(params, batches, steps, step_loss, *a, **kw):
        def loss(batch):
            calls["n"] += 1
            if calls["n"] == n:
                die()
            return step_loss(batch)
        desc = kw.get("desc", a[4] if len(a) > 4 else "")  # (lr, warmup, schedule, accum, desc)
        return real(params, batches, steps, loss if desc == "fine-tune" else step_loss, *a, **kw)
    recipes.optimise = optimise
elif point == "between-sustainability":
    from repro.experiments import runner
    real = runner.Runner.record
    def record(self, experiment, method, target, step, key, measured):
        real(self, experiment, method, target, step, key, measured)
        if experiment == "sustainability" and step == n:
            die()
    runner.Runner.record = record
elif point == "mid-eval":
    from repro.eval import answering  # where the session's letter predictions are computed
    real = answering.predict
    def predict(model, *a, **kw):
        calls["n"] += 1
        if calls["n"] == n:  # die inside the model's first forward pass of this evaluation
            model.register_forward_hook(lambda *_: die())
        return real(model, *a, **kw)
    answering.predict = predict
elif point == "torn-append":
    import json
    from repro.experiments import results
    real = results.ResultsFile.append
    def append(self, records):
        calls["n"] += 1
        if calls["n"] == n:
            with self.path.open("a") as fh:
                text = json.dumps(records[0], sort_keys=True)
                fh.write(text[: len(text) // 2])
                fh.flush()
                os.fsync(fh.fileno())
            die()
        return real(self, records)
    results.ResultsFile.append = append
from repro.cli import main
raise SystemExit(main(sys.argv[3:]))
"""


def _killed_run(tmp_path: Path, point: str, n: int) -> Path:
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", DRIVER, point, str(n), "all", "--out", str(run_dir), "--units", str(run_dir / "units"), *SETS],
                          env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed at {point}:\n{proc.stderr[-2000:]}"
    return run_dir


@pytest.mark.slow
def test_sigkill_after_first_finetuned_request_resumes_to_the_clean_results(clean_run, tmp_path):
    """`python -m repro all` killed from outside (SIGKILL) once the first unlearning request is recorded."""
    run_dir = tmp_path / "run"
    results = run_dir / "results.jsonl"
    status = sigkill_when([sys.executable, "-m", "repro", "all", "--out", str(run_dir), "--units", str(run_dir / "units"), *SETS],
                          lambda: any(r["experiment"] == "finetuned" and r["step"] == 1 for r in read_results(results)),
                          300, env=_env(), cwd=tmp_path)
    assert status == -signal.SIGKILL
    killed = read_results(results)
    assert 0 < len(killed) < len(read_results(clean_run / "results.jsonl"))
    assert_resumes_to_clean(run_dir, clean_run)


@pytest.mark.slow
@pytest.mark.parametrize(("point", "n"), [
    ("mid-finetune", 2),            # the fine-tune's second step: no fine-tuned model on disk yet
    ("between-sustainability", 2),  # request 2 of the first method recorded, request 3 not started
    ("mid-eval", 5),                # inside a forward pass of the fifth evaluation
    ("torn-append", 4),             # half a record written to results.jsonl, then the kill
])
def test_sigkill_at_a_point_resumes_to_the_clean_results(clean_run, tmp_path, point, n):
    run_dir = _killed_run(tmp_path, point, n)
    results = run_dir / "results.jsonl"
    if point == "between-sustainability":
        last = read_results(results)[-1]
        assert (last["experiment"], last["step"]) == ("sustainability", n)
    if point == "torn-append":
        assert not results.read_bytes().endswith(b"\n"), "the kill left a torn last line"
        n_complete = results.read_bytes().count(b"\n")
        assert len(read_results(results)) == n_complete, "the torn line was parsed as data"
    assert_resumes_to_clean(run_dir, clean_run)


@pytest.mark.slow
def test_exception_mid_request_resumes_in_process(clean_run, tmp_path, monkeypatch):
    """An exception (not a kill) raised by the fifth evaluation (after the first unlearning request) leaves a
    resumable run."""
    from repro.eval import answering  # where the session's letter predictions are computed

    real, calls = answering.predict, {"n": 0}

    def failing(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("simulated crash")
        return real(*a, **kw)

    monkeypatch.setattr(answering, "predict", failing)
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_protocol(micro_profile(), run_dir, run_dir / "units")
    monkeypatch.setattr(answering, "predict", real)
    assert_resumes_to_clean(run_dir, clean_run)


# ---------------------------------------------------------------- divergence


@pytest.mark.slow
def test_a_diverging_method_is_recorded_and_the_grid_goes_on(clean_run, tmp_path, monkeypatch):
    spec = methods_mod.METHODS.get("ga_klr")
    calls = {"n": 0}

    def nan_at_step_2(step):
        calls["n"] += 1
        loss = spec.loss(step)
        return loss * float("nan") if calls["n"] == 2 else loss

    real_request = runner_mod.unlearn_request

    def request(*a, **kw):
        calls["n"] = 0  # count steps per request
        return real_request(*a, **kw)

    monkeypatch.setitem(methods_mod.METHODS._entries, "ga_klr", dataclasses.replace(spec, loss=nan_at_step_2))
    monkeypatch.setattr(runner_mod, "unlearn_request", request)
    run_dir = tmp_path / "run"
    run_protocol(micro_profile(), run_dir, run_dir / "units")

    events = [json.loads(line) for line in (run_dir / "diverged.jsonl").read_text().splitlines()]
    assert {(e["experiment"], e["request"]) for e in events} >= {("finetuned", 1), ("pretrained", 1)}
    assert all(e["method"] == "ga_klr" and e["optimizer_step"] == 2 and e["loss"] == "nan" for e in events)
    records = read_results(run_dir / "results.jsonl")
    assert all(math.isfinite(r["accuracy"]) for r in records), "a NaN accuracy was written"
    for e in events:  # the diverged request has no record; the step before it does
        steps = {r["step"] for r in records if (r["experiment"], r["method"]) == (e["experiment"], "ga_klr")}
        assert e["request"] not in steps and e["request"] - 1 in steps
    # The other methods ran on as if nothing happened: their numbers equal the clean run's.
    got, want = by_identity(run_dir / "results.jsonl"), by_identity(clean_run / "results.jsonl")
    others = {k: v for k, v in want.items() if k[1] != "ga_klr"}
    assert {k: v for k, v in got.items() if k[1] != "ga_klr"} == others
    # The report renders with the missing step-1 cells shown as "-".
    tables = (run_dir / "report" / "tables.md").read_text()
    assert any(line.startswith("| fine") and "GA+KLR" in line and "| -" in line for line in tables.splitlines())
    assert (run_dir / "report" / "figure3.png").stat().st_size > 1000
    # A rerun records the same divergence once, not twice.
    before = (run_dir / "diverged.jsonl").read_text()
    run_protocol(micro_profile(), run_dir, run_dir / "units")
    assert (run_dir / "diverged.jsonl").read_text() == before


# ---------------------------------------------------------------- bad input


@pytest.fixture()
def victim(clean_run, tmp_path) -> Path:
    """A copy of a finished run: bad input aimed at it must leave its results untouched."""
    run_dir = tmp_path / "victim"
    shutil.copytree(clean_run, run_dir)
    return run_dir


def _untouched(run_dir: Path):
    path = run_dir / "results.jsonl"
    return path.read_bytes(), path.stat().st_mtime_ns


@pytest.mark.parametrize(("override", "named"), [
    ("unlearn.bogus=1", "unlearn.bogus"),
    ("nonsense=1", "nonsense"),
    ("unlearn.lr=fast", "unlearn.lr"),
    ("finetune.epochs=1.5", "finetune.epochs"),
    ("eval.mmbench_circular=1", "eval.mmbench_circular"),
    ("unlearn.methods=ga", "unlearn.methods"),
    ('unlearn.methods=["ga", "nope"]', "unknown unlearning method 'nope'"),
    ("unlearn.reference=latest", "unlearn.reference 'latest'"),
    ("finetune.target=vision", "update target 'vision'"),
    ("eval.scoring=bleu", "eval.scoring 'bleu'"),
])
def test_a_bad_profile_value_is_refused_in_one_line(victim, capsys, override, named):
    before = _untouched(victim)
    assert main(["run", "finetuned", "--out", str(victim), *SETS, "--set", override]) == 2
    one_line_error(capsys, named)
    assert _untouched(victim) == before


def test_a_profile_file_with_an_unknown_key_is_refused(victim, tmp_path, capsys):
    text = (ROOT / "repro" / "profiles" / "tiny.toml").read_text() + "\n[extra]\nthing = 1\n"
    (tmp_path / "bad.toml").write_text(text)
    before = _untouched(victim)
    assert main(["all", "--profile", str(tmp_path / "bad.toml"), "--out", str(victim)]) == 2
    one_line_error(capsys, "extra")
    assert _untouched(victim) == before


def test_a_model_directory_without_safetensors_is_refused(tmp_path, capsys):
    from repro.errors import ReproError
    from repro.model.factory import load_model

    model_dir = tmp_path / "llava"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    (model_dir / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(ReproError, match="no \\*.safetensors") as exc:
        load_model(str(model_dir))
    assert str(model_dir) in str(exc.value) and "\n" not in str(exc.value)
    out = tmp_path / "run"
    assert main(["run", "pretrained", "--out", str(out), *SETS, "--set", f"model.source={model_dir}"]) == 2
    one_line_error(capsys, str(model_dir), "safetensors")
    assert not (out / "results.jsonl").exists() or not read_results(out / "results.jsonl")


def test_a_data_source_missing_a_config_is_refused(tmp_path, capsys):
    from repro.experiments.data import RunData

    world = RunData(micro_profile()).mllmu_root
    mllmu = tmp_path / "MLLMU-Bench"
    shutil.copytree(world, mllmu)
    shutil.rmtree(mllmu / "Retain_Set")
    assert main(["data", "check", "mllmu", str(mllmu)]) == 2
    one_line_error(capsys, "Retain_Set")
    out = tmp_path / "run"
    assert main(["run", "pretrained", "--out", str(out), *SETS, "--set", f"data.mllmu={mllmu}"]) == 2
    one_line_error(capsys, "Retain_Set", str(mllmu))
    assert not (out / "results.jsonl").exists() or not read_results(out / "results.jsonl")


# ---------------------------------------------------------------- determinism


@pytest.mark.slow
def test_same_seed_gives_identical_results(clean_run, tmp_path, monkeypatch):
    """A second run from nothing (its own cache: the base model is pre-trained again) matches byte for byte."""
    monkeypatch.setenv("PULSE_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    run_protocol(micro_profile(), run_dir, run_dir / "units")
    assert (run_dir / "results.jsonl").read_bytes() == (clean_run / "results.jsonl").read_bytes()
    assert (run_dir / "manifest.json").read_bytes() == (clean_run / "manifest.json").read_bytes()


def test_different_seeds_give_different_splits(tmp_path):
    from repro.data.splits import build_fictional_splits
    from repro.experiments.data import RunData

    manifests = []
    for seed in (0, 1):
        out = tmp_path / f"splits-{seed}.json"
        assert main(["splits", "--out", str(out), *SETS, "--set", f"seed={seed}"]) == 0
        manifests.append(json.loads(out.read_text())["fictional"])
    assert manifests[0] != manifests[1]
    # On the very same people, too: the split is a function of the seed, not only of the data.
    profile = micro_profile()
    people = RunData(profile).fictional
    a, b = (build_fictional_splits(people, profile.splits, seed) for seed in (0, 1))
    assert a["unlearn"] != b["unlearn"] or a["shards"] != b["shards"]
    assert build_fictional_splits(people, profile.splits, 0) == a


@pytest.mark.slow
def test_a_full_disk_is_refused_before_the_fine_tune_starts(clean_run, tmp_path, capsys, monkeypatch):
    from collections import namedtuple

    from repro.experiments import disk
    from repro.train import recipes

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda path: usage(10_000, 9_000, 1_000))
    trained = []
    real = recipes.optimise
    monkeypatch.setattr(recipes, "optimise", lambda *a, **kw: trained.append(1) or real(*a, **kw))
    out = tmp_path / "run"
    assert main(["run", "finetuned", "--out", str(out), "--units", str(out / "units"), *SETS]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the base model's loading bar
    assert err.startswith("pulse-repro: error: not enough free disk in " + str(out / "units")), err
    assert "fine-tuned model" in err and "MB is free" in err
    assert not trained, "the fine-tune started although its model could not be written"
    assert not list((out / "units").glob("model-*"))


@pytest.mark.parametrize(("flag", "named"), [("--method=nope", "'nope'"), ("--target=vision", "'vision'")])
def test_an_unknown_method_or_target_is_refused_before_any_work(tmp_path, capsys, flag, named):
    out = tmp_path / "run"
    assert main(["run", "finetuned", flag, "--out", str(out), *SETS]) == 2
    one_line_error(capsys, named)
    assert not out.exists()


def test_a_model_path_that_does_not_exist_is_named_not_sent_to_the_hub(tmp_path):
    from repro.errors import ReproError
    from repro.model.factory import load_model

    missing = tmp_path / "llava-13b"
    with pytest.raises(ReproError, match="no such directory") as exc:
        load_model(str(missing))
    assert str(missing) in str(exc.value)
