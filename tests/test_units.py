"""Units are shared across run directories through the store (repro/experiments/store.py): a sweep over a
method's parameter fine-tunes once, and trains one request per value."""

from __future__ import annotations

import pytest
from small_model import MICRO

from repro.cli import main
from repro.experiments.results import read_results

SETS = [arg for override in MICRO for arg in ("--set", override)]


@pytest.fixture
def trainings(monkeypatch, tmp_path):
    """Counts of the fine-tunes and unlearning requests trained, in a cache of this test's own."""
    from repro.experiments import session, unlearn

    monkeypatch.setenv("PULSE_CACHE", str(tmp_path / "cache"))
    counts = {"finetune": 0, "unlearn": 0}

    def counted(name, real):
        def run(*a, **kw):
            counts[name] += 1
            return real(*a, **kw)
        return run

    monkeypatch.setattr(session, "finetune", counted("finetune", session.finetune))
    monkeypatch.setattr(unlearn, "unlearn", counted("unlearn", unlearn.unlearn))
    return counts


def test_a_sweep_over_npo_beta_fine_tunes_once(trainings, tmp_path):
    runs = {}
    for beta in ("0.05", "0.1", "0.2"):
        out = tmp_path / f"npo-{beta}"
        assert main(["run", "finetuned", "--method", "npo", "--set", f"unlearn.npo.beta={beta}", "--out", str(out),
                     *SETS]) == 0
        runs[beta] = read_results(out / "results.jsonl")
    assert trainings == {"finetune": 1, "unlearn": 3}
    start = {r["model"] for rs in runs.values() for r in rs if r["step"] == 0}
    after = {r["model"] for rs in runs.values() for r in rs if r["step"] == 1}
    assert len(start) == 1 and len(after) == 3  # one fine-tuned model; one unlearned model per beta
    # a run that asks for what is in the store trains nothing, and records the same numbers
    again = tmp_path / "again"
    assert main(["run", "finetuned", "--method", "npo", "--set", "unlearn.npo.beta=0.2", "--out", str(again), *SETS]) == 0
    assert trainings == {"finetune": 1, "unlearn": 3}
    assert read_results(again / "results.jsonl") == runs["0.2"]


def test_units_go_where_units_says(trainings, tmp_path):
    store = tmp_path / "store"
    assert main(["run", "finetuned", "--method", "ga", "--out", str(tmp_path / "run"), "--units", str(store),
                 *SETS]) == 0
    assert [p.name.split("-")[0] for p in store.glob("model-*.safetensors")] == ["model"]
    assert len(list(store.glob("adapter-*.safetensors"))) == 1
    assert not (tmp_path / "run" / "units").exists() and not (tmp_path / "cache" / "units").exists()


def test_a_requests_unit_is_named_by_its_start_model_and_a_made_one_is_not_made_again():
    """Two requests alike but for the model they start from are two units; a unit the store has is returned
    as it is, with no training (no losses)."""
    from types import SimpleNamespace

    from repro.choices import load_profile
    from repro.data.records import Person
    from repro.experiments.keys import request_key
    from repro.experiments.unlearn import unlearn_request
    from repro.train.methods import get_method

    profile = load_profile("tiny")
    made, recorded = set(), []
    session = SimpleNamespace(profile=profile, models=SimpleNamespace(has=lambda key: key in made),
                              units=SimpleNamespace(record=recorded.append))
    forget = [Person(f"{i:03d}", "Full_Set", b"", ()) for i in (1, 2)]
    retain = [Person("003", "Full_Set", b"", ())]
    keys = {start: request_key(profile, start, get_method("npo"), "proj+llm", ["Full_Set/001", "Full_Set/002"],
                               ["Full_Set/003"]) for start in ("model-a", "model-b")}
    assert keys["model-a"] != keys["model-b"]
    made.update(keys.values())
    for start, key in keys.items():
        assert unlearn_request(session, start, forget, retain, "npo", "proj+llm") == (key, [])
        # found in the store: units.jsonl says so, with whom it was made to forget and retain
        assert {k: recorded[-1][k] for k in ("kind", "key", "start", "made", "forget", "retain")} == {
            "kind": "request", "key": key, "start": start, "made": False,
            "forget": ["Full_Set/001", "Full_Set/002"], "retain": ["Full_Set/003"]}
