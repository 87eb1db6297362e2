"""The protocol checked against the run's own provenance (RUN_DIR/units.jsonl), not against the kit's helpers:
which people each unlearning request forgot and retained and which model it started from, read back from the
run directory and compared with the split manifest. Training, loading and scoring are faked (no model); the
experiments' loops, the unit keys, the request bookkeeping and the units file are the kit's own, so a run
that feeds a request the wrong people, chains it from the wrong model or collapses the seeds fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from small_model import MICRO

from repro.choices import load_profile
from repro.experiments import runner as runner_module
from repro.experiments import session as session_module
from repro.experiments import unlearn as unlearn_module
from repro.experiments.provenance import read_units
from repro.experiments.runner import Runner, run_experiment
from repro.experiments.seeds import run_seeds
from repro.experiments.session import Session

OVERRIDES = [*MICRO, "splits.min_accuracy=0"]


@pytest.fixture
def faked(monkeypatch, tmp_path):
    """Every model-touching step faked; returns run(experiment, methods) -> run directory."""

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded: the provenance test must not need one")

    def measure(self, model_key, splits):
        return [{"split": s, "modality": "all", "accuracy": 50.0, "n": len(people)} for s, people in splits.items()]

    def evaluate(self, model_key, items, desc="eval", rule="first-letter"):
        return {it.uid: it.answer for it in items}  # the base model knows every celebrity

    store: set[str] = set()  # the unit store's keys, shared by every run of the test

    class Models:  # one process's models: what it holds live, and what the store has
        def __init__(self):
            self.kept: set[str] = set()

        def is_kept(self, key):
            return key in self.kept

        def has(self, key):
            return key in store

    def models(self):
        return self.__dict__.setdefault("_fake_models", Models())

    def train_request(session, key, start, request):
        store.add(key)
        return [0.0], {}

    def train_finetuned(self, key, examples):
        store.add(key)
        self.models.kept.add(key)
        return {"made": True}

    monkeypatch.setattr(Session, "models", property(models))
    monkeypatch.setattr(unlearn_module, "train_request", train_request)
    monkeypatch.setattr(Session, "train_finetuned", train_finetuned)
    monkeypatch.setattr(Runner, "measure", measure)
    monkeypatch.setattr(Session, "evaluate", evaluate)
    monkeypatch.setattr(session_module, "load_base", no_model)
    monkeypatch.setattr(runner_module, "write_outputs", lambda run_dir, stages: None)
    monkeypatch.setattr("repro.report.seeds.write_seeds_report", lambda parent: parent)
    monkeypatch.setenv("PULSE_CACHE", str(tmp_path / "cache"))

    def run(experiment, methods=("ga", "npo")):
        run_dir = tmp_path / experiment
        profile = load_profile("tiny", OVERRIDES)
        assert run_experiment(profile, run_dir, experiment, list(methods), None, units=tmp_path / "units") == 0
        return run_dir

    return run


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def requests(run_dir: Path, method: str) -> list[dict]:
    return [u for u in read_units(run_dir) if u["kind"] == "request" and u["method"] == method]


def only(units: list[dict], kind: str) -> dict:
    (unit,) = [u for u in units if u["kind"] == kind]
    return unit


def test_request_k_forgets_shard_k_and_starts_from_request_k_minus_1(faked):
    run_dir = faked("sustainability")
    fictional = manifest(run_dir)["fictional"]
    finetuned = only(read_units(run_dir), "finetuned")
    assert finetuned["people"] == fictional["pool"]  # fine-tuned on the whole pool
    for method in ("ga", "npo"):
        chain = requests(run_dir, method)
        assert [sorted(u["forget"]) for u in chain] == fictional["shards"]
        assert [u["start"] for u in chain] == [finetuned["key"]] + [u["key"] for u in chain[:-1]]
        for unit in chain:
            assert sorted(unit["retain"]) == fictional["retain"]
            assert unit["made"] and unit["target"] == "proj+llm" and unit["seed"] == 0


def test_no_request_forgets_a_retain_person_or_retains_an_unlearn_person(faked):
    for experiment in ("finetuned", "sustainability", "modality"):
        run_dir = faked(experiment)
        fictional = manifest(run_dir)["fictional"]
        units = [u for u in read_units(run_dir) if u["kind"] == "request"]
        assert units
        for unit in units:
            assert set(unit["forget"]) <= set(fictional["unlearn"]), experiment
            assert not set(unit["forget"]) & set(fictional["retain"]), experiment
            assert not set(unit["retain"]) & set(fictional["unlearn"]), experiment
        if experiment != "sustainability":  # one request per method and target: the whole of D_unlearn
            assert all(sorted(u["forget"]) == fictional["unlearn"] for u in units)


def test_the_pretrained_experiment_forgets_exactly_the_selected_celebrities(faked):
    run_dir = faked("pretrained")
    selection = manifest(run_dir)["celebrities"]
    base = only(read_units(run_dir), "base") if any(u["kind"] == "base" for u in read_units(run_dir)) else None
    assert base is None  # loading was faked: the base model's unit is recorded where a model is loaded
    profile = load_profile("tiny", OVERRIDES)
    assert len(selection["unlearn"]) == profile.splits.celebrity_unlearn
    for method in ("ga", "npo"):
        (unit,) = requests(run_dir, method)
        assert sorted(unit["forget"]) == sorted(selection["unlearn"])
        assert sorted(unit["retain"]) == sorted(selection["retain"])
        assert not set(unit["forget"]) & set(unit["retain"])


def test_three_seeds_give_three_distinct_seeds_over_one_world_and_base(faked, tmp_path):
    run_seeds("tiny", OVERRIDES, [0, 1, 2], tmp_path / "seeds", tmp_path / "units")
    runs = {seed: read_units(tmp_path / "seeds" / f"seed-{seed}") for seed in (0, 1, 2)}
    finetuned = {seed: only(units, "finetuned") for seed, units in runs.items()}
    assert [finetuned[s]["seed"] for s in (0, 1, 2)] == [0, 1, 2]
    assert len({u["torch_seed"] for u in finetuned.values()}) == 3
    assert len({u["key"] for u in finetuned.values()}) == 3
    assert len({u["start"] for u in finetuned.values()}) == 1  # one base model: the world and base held
    for method in ("ga", "ga_klr", "npo"):
        first = {seed: next(u for u in units if u["kind"] == "request" and u["method"] == method)
                 for seed, units in runs.items()}
        assert [first[s]["seed"] for s in (0, 1, 2)] == [0, 1, 2]
        assert len({u["torch_seed"] for u in first.values()}) == 3
        assert [first[s]["start"] for s in (0, 1, 2)] == [finetuned[s]["key"] for s in (0, 1, 2)]


def test_a_unit_is_recorded_once_per_run_and_a_resumed_run_adds_nothing(faked):
    run_dir = faked("finetuned")
    before = (run_dir / "units.jsonl").read_text()
    faked("finetuned")  # the same run again: every unit is found, nothing is recorded twice
    assert (run_dir / "units.jsonl").read_text() == before
    keys = [(u["kind"], u["key"]) for u in read_units(run_dir)]
    assert len(keys) == len(set(keys))
