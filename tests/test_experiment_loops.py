"""Each experiment's loop against a recording fake, without training or loading a model: which people each
unlearning request forgets and retains, which model it starts from, which model is measured after it, and
which records are written with which step (docs/design.md, "The protocol"). The fakes stand in for the
unlearning request, the measurement, the fine-tuned model and the celebrity scoring; the loops, the
splits and the results file are the kit's own."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from llava_text import DIALECT
from small_model import MICRO

from repro.choices import load_profile
from repro.experiments import runner as runner_module
from repro.experiments import session as session_module
from repro.experiments.runner import Runner, run_experiment
from repro.experiments.session import Session
from repro.train.loop import Diverged

FINETUNED = "the-fine-tuned-model"
SHARDS = [f"shard_{i}" for i in range(1, 6)]
# How many of its ten questions the base model answers, by celebrity ID: five it knows fully, two it
# knows well enough (splits.min_accuracy=50 below) but less, and the rest not at all.
KNOWN = {1: 10, 4: 10, 7: 10, 8: 10, 10: 10, 2: 6, 3: 6}


@dataclass
class Request:
    start: str
    forget: list[str]
    retain: list[str]
    method: str
    target: str
    key: str  # the model it made


@dataclass
class Recorder:
    requests: list[Request] = field(default_factory=list)
    measured: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)  # (model, {split: people})
    scored_celebrities_with: list[str] = field(default_factory=list)
    diverge: tuple[str, int] | None = None  # (method, request number in its chain) that diverges


@pytest.fixture
def loop(monkeypatch, tmp_path):
    """The experiments with every model-touching step faked."""
    rec = Recorder()

    def unlearn_request(session, start, forget, retain, method, target):
        chain = [r for r in rec.requests if r.method == method and r.target == target]
        if rec.diverge is not None and rec.diverge == (method, len(chain) + 1):
            raise Diverged(7, float("nan"))
        request = Request(start, sorted(p.key for p in forget), sorted(p.key for p in retain), method, target,
                          f"model-{len(rec.requests) + 1}")
        rec.requests.append(request)
        return request.key, []

    def measure(self, model_key, splits):
        rec.measured.append((model_key, {s: sorted(p.key for p in people) for s, people in splits.items()}))
        return [{"split": s, "modality": "all", "accuracy": float(len(rec.measured)), "n": len(people)}
                for s, people in splits.items()]

    def evaluate(self, model_key, items, desc="eval", rule="first-letter"):
        rec.scored_celebrities_with.append(model_key)
        known = {it.person: KNOWN.get(int(it.person.split("/")[1]), 0) for it in items}
        return {it.uid: it.answer if int(it.uid.split("#")[1]) < known[it.person] else "none" for it in items}

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded: the loop test must not need one")

    monkeypatch.setattr(runner_module, "unlearn_request", unlearn_request)
    monkeypatch.setattr(Runner, "measure", measure)
    monkeypatch.setattr(Session, "evaluate", evaluate)
    monkeypatch.setattr(Session, "finetuned", lambda self: FINETUNED)
    monkeypatch.setattr(session_module, "load_base", no_model)
    profile = load_profile("tiny", [*MICRO, "splits.min_accuracy=50"])
    run_dir = tmp_path / "run"

    class Loop:
        """loop(experiment, methods, targets) -> (recorder, run directory); loop.rec arms a divergence first."""

        def __init__(self):
            self.rec = rec

        def __call__(self, experiment, methods=None, targets=None):
            assert run_experiment(profile, run_dir, experiment, methods, targets, units=tmp_path / "units") == 0
            return rec, run_dir

    return Loop()


def written(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def test_sustainability_unlearns_shard_k_at_request_k_from_the_previous_requests_model(loop):
    rec, run_dir = loop("sustainability", ["ga", "npo"])
    fictional = manifest(run_dir)["fictional"]
    shards = fictional["shards"]
    assert len(shards) == 5 and sorted(k for s in shards for k in s) == fictional["unlearn"]
    for method in ("ga", "npo"):
        chain = [r for r in rec.requests if r.method == method]
        assert [r.forget for r in chain] == shards  # request k forgets shard k
        assert all(r.retain == fictional["retain"] and r.target == "proj+llm" for r in chain)
        # each method's chain starts again from the fine-tuned model, then from the previous request's model
        assert [r.start for r in chain] == [FINETUNED] + [r.key for r in chain[:-1]]
        records = [r for r in written(run_dir) if r["method"] == method]
        assert {(r["experiment"], r["target"]) for r in records} == {("sustainability", "proj+llm")}
        assert {(r["step"], r["model"]) for r in records} == {(0, FINETUNED)} | {
            (k, r.key) for k, r in enumerate(chain, 1)}
        for step in range(6):
            by_split = {r["split"]: r["n"] for r in records if r["step"] == step}
            assert by_split == {"unlearn": len(fictional["unlearn"]), "retain": len(fictional["retain"]),
                                **{name: len(shard) for name, shard in zip(SHARDS, shards)}}
    for _, splits in rec.measured:  # every measurement sees every split, each with its own people
        assert splits == {"unlearn": fictional["unlearn"], "retain": fictional["retain"], **dict(zip(SHARDS, shards))}
    assert [m for m, _ in rec.measured] == [FINETUNED] + [r.key for r in rec.requests[:5]] + [FINETUNED] + [
        r.key for r in rec.requests[5:]]


def test_a_diverging_request_ends_its_chain_only(loop):
    loop.rec.diverge = ("npo", 3)
    rec, run_dir = loop("sustainability", ["npo", "ga"])
    assert [len([r for r in rec.requests if r.method == m]) for m in ("npo", "ga")] == [2, 5]
    steps = {m: sorted({x["step"] for x in written(run_dir) if x["method"] == m}) for m in ("npo", "ga")}
    assert steps == {"npo": [0, 1, 2], "ga": [0, 1, 2, 3, 4, 5]}
    diverged = [json.loads(line) for line in (run_dir / "diverged.jsonl").read_text().splitlines()]
    assert [(d["method"], d["request"], d["optimizer_step"]) for d in diverged] == [("npo", 3, 7)]


def test_finetuned_unlearns_d_unlearn_once_per_method_from_the_fine_tuned_model(loop):
    rec, run_dir = loop("finetuned", ["ga", "ga_klr", "npo"])
    fictional = manifest(run_dir)["fictional"]
    assert [(r.method, r.start, r.forget, r.retain, r.target) for r in rec.requests] == [
        (m, FINETUNED, fictional["unlearn"], fictional["retain"], "proj+llm") for m in ("ga", "ga_klr", "npo")]
    records = written(run_dir)
    for r in rec.requests:
        mine = [x for x in records if x["method"] == r.method]
        assert {(x["step"], x["model"]) for x in mine} == {(0, FINETUNED), (1, r.key)}
        assert {x["split"] for x in mine} == {"unlearn", "retain"}
    # the start model is measured once, before any method, then each unlearned model once
    assert [m for m, _ in rec.measured] == [FINETUNED] + [r.key for r in rec.requests]


def test_pretrained_unlearns_celebrities_the_scored_model_knows_from_that_model(loop):
    rec, run_dir = loop("pretrained", ["ga", "npo"])
    selection = manifest(run_dir)["celebrities"]
    scored = set(rec.scored_celebrities_with)
    assert len(scored) == 1 and FINETUNED not in scored  # the base model, not the fine-tuned one
    base = scored.pop()
    assert {k: v for k, v in selection["scores"].items() if v} == {
        f"Retain_Set/{i:03d}": 10.0 * n for i, n in KNOWN.items()}
    # the best five (MICRO's celebrity_keep), not the two that clear min_accuracy with less, split 2 / 3
    assert sorted(selection["unlearn"] + selection["retain"]) == [f"Retain_Set/{i:03d}" for i in (1, 4, 7, 8, 10)]
    assert (len(selection["unlearn"]), len(selection["retain"])) == (2, 3)
    assert [(r.method, r.start, r.forget, r.retain) for r in rec.requests] == [
        (m, base, selection["unlearn"], selection["retain"]) for m in ("ga", "npo")]
    assert {(x["method"], x["step"], x["model"]) for x in written(run_dir)} == {
        (m, 0, base) for m in ("ga", "npo")} | {(r.method, 1, r.key) for r in rec.requests}


def test_modality_runs_ga_on_both_update_targets_from_the_fine_tuned_model(loop):
    rec, run_dir = loop("modality")
    fictional = manifest(run_dir)["fictional"]
    assert [(r.method, r.target, r.start, r.forget) for r in rec.requests] == [
        ("ga", "proj+llm", FINETUNED, fictional["unlearn"]), ("ga", "llm", FINETUNED, fictional["unlearn"])]
    assert {(x["target"], x["step"], x["model"]) for x in written(run_dir)} == {
        ("proj+llm", 0, FINETUNED), ("llm", 0, FINETUNED)} | {(r.target, 1, r.key) for r in rec.requests}


def test_the_protocol_runs_every_experiment_with_modality_on_ga_alone(loop, monkeypatch, tmp_path):
    """`all`'s loop: the four experiments in order, the modality experiment with GA only whatever the
    profile's methods (Table B is GA's), and the stage times with the total handed to the report."""
    from repro.experiments.runner import run_protocol

    handed = {}
    monkeypatch.setattr(runner_module, "write_outputs", lambda run_dir, stages: handed.update(stages))
    profile = load_profile("tiny", [*MICRO, "splits.min_accuracy=50", "unlearn.methods=[\"ga\", \"npo\"]"])
    stages = run_protocol(profile, tmp_path / "protocol", units=tmp_path / "units")
    assert handed == stages and set(stages) == {"finetuned", "pretrained", "sustainability", "modality", "total"}
    records = written(tmp_path / "protocol")
    assert {r["experiment"] for r in records} == {"finetuned", "pretrained", "sustainability", "modality"}
    assert {r["method"] for r in records if r["experiment"] == "modality"} == {"ga"}
    assert {r["method"] for r in records if r["experiment"] == "sustainability"} == {"ga", "npo"}
    assert [r.method for r in loop.rec.requests if r.target == "llm"] == ["ga"]


def test_a_measurement_gives_every_split_whole_and_by_modality_and_every_benchmark(monkeypatch, tmp_path):
    """Runner.measure with the model's answers faked (every question about an even-numbered person right):
    per split, an "all" record and one per modality, each over exactly its questions; then MMBench's two."""
    from repro.eval.items import person_items

    def evaluate(self, model_key, items, desc="eval", rule="first-letter"):
        return {it.uid: it.answer if not it.person or int(it.person[-1]) % 2 == 0 else "none" for it in items}

    monkeypatch.setattr(Session, "evaluate", evaluate)
    monkeypatch.setattr(session_module, "load_base", lambda *a, **k: pytest.fail("no model is needed"))
    profile = load_profile("tiny", MICRO)
    runner = Runner(profile, tmp_path / "run", tmp_path / "units")
    people = runner.session.data.fictional
    splits = {"unlearn": people[:2], "retain": people[2:5]}
    records = runner.measure("m", splits)
    for split, mine in splits.items():
        items = person_items(mine, DIALECT)
        got = {r["modality"]: r for r in records if r["split"] == split}
        assert set(got) == {"all"} | {it.modality for it in items}
        for modality, r in got.items():
            asked = [it for it in items if modality in ("all", it.modality)]
            right = [it for it in asked if int(it.person[-1]) % 2 == 0]
            assert (r["n"], r["accuracy"]) == (len(asked), round(100 * len(right) / len(asked), 4))
            assert r["clusters"] == len({it.person for it in asked})
    assert [r["split"] for r in records if r["split"] not in splits] == ["mmbench", "mmbench_circular"]


def test_a_diverging_method_is_recorded_and_the_other_methods_still_run(loop):
    loop.rec.diverge = ("ga_klr", 1)
    rec, run_dir = loop("finetuned", ["ga", "ga_klr", "npo"])
    assert [r.method for r in rec.requests] == ["ga", "npo"]
    assert {x["method"] for x in written(run_dir) if x["step"] == 1} == {"ga", "npo"}
    diverged = [json.loads(line) for line in (run_dir / "diverged.jsonl").read_text().splitlines()]
    assert [(d["experiment"], d["method"], d["target"], d["request"], d["optimizer_step"]) for d in diverged] == [
        ("finetuned", "ga_klr", "proj+llm", 1, 7)]


def test_all_ends_with_the_verdict_unless_told_not_to(loop, monkeypatch, tmp_path, capsys):
    """`all` on the faked loops: with the verdict (the default) the made-up numbers fail the tiny golden
    file; with verify=False there is no verdict and the run succeeds."""
    from repro.experiments.runner import run_all

    monkeypatch.setattr(runner_module, "write_outputs", lambda run_dir, stages: None)
    profile = load_profile("tiny", [*MICRO, "splits.min_accuracy=50"])
    assert run_all(profile, tmp_path / "checked", units=tmp_path / "units") == 1
    assert "FAIL" in capsys.readouterr().out
    assert run_all(profile, tmp_path / "unchecked", verify=False, units=tmp_path / "units") == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and f"results: {tmp_path / 'unchecked' / 'results.jsonl'}" in out


def test_an_experiment_refuses_an_unknown_method_or_target_before_it_starts(loop, tmp_path):
    from repro.errors import ConfigError

    profile = load_profile("tiny", MICRO)
    for methods, targets, named in ((["ga", "nope"], None, "nope"), (["ga"], ["vision"], "vision")):
        with pytest.raises(ConfigError, match=named):
            run_experiment(profile, tmp_path / "refused", "finetuned", methods, targets, units=tmp_path / "units")
    assert loop.rec.requests == [] and not (tmp_path / "refused" / "results.jsonl").exists()
