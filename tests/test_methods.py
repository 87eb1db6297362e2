"""The methods added beside PULSE's (SimNPO, MLLMU-Bench's KL_Min), per-method parameters in profiles, and
request keys that hold a method's own parameters only."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F

from repro.choices import load_profile
from repro.config import UnlearnConfig
from repro.errors import ConfigError
from repro.experiments.keys import request_key
from repro.hashing import key_of
from repro.train.loop import Example
from repro.train.losses import every_position_kl, simnpo_loss
from repro.train.methods import get_method, method_params

# --- SimNPO ------------------------------------------------------------------------------------------


def _answer_logprobs_one_by_one(logits, labels):
    """(per-sequence sum of answer-token log-probabilities, answer lengths), token by token."""
    sums, lengths = [], []
    for b in range(labels.shape[0]):
        total, n = 0.0, 0
        for t in range(1, labels.shape[1]):
            if labels[b, t] != -100:
                total += torch.log_softmax(logits[b, t - 1].double(), -1)[labels[b, t]].item()
                n += 1
        sums.append(total)
        lengths.append(n)
    return sums, lengths


@pytest.mark.parametrize(("beta", "gamma"), [(2.5, 0.0), (1.0, 0.7), (0.3, -0.2)])
def test_simnpo_is_fan_et_al_eq_4(beta, gamma):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 9, 13, generator=g)
    labels = torch.full((3, 9), -100)
    labels[0, 3:9] = torch.randint(0, 13, (6,), generator=g)
    labels[1, 6:8] = torch.randint(0, 13, (2,), generator=g)
    labels[2, 2:5] = torch.randint(0, 13, (3,), generator=g)
    sums, lengths = _answer_logprobs_one_by_one(logits, labels)
    expected = -(2 / beta) * sum(math.log(1 / (1 + math.exp(beta * s / n + gamma))) for s, n in zip(sums, lengths)) / 3
    assert simnpo_loss(logits, labels, beta, gamma).item() == pytest.approx(expected, rel=1e-5)


def test_simnpo_normalises_by_length_where_npo_does_not():
    """Repeating an answer's tokens doubles its log-likelihood; SimNPO's loss stays as it was."""
    logits = torch.randn(1, 5, 7)
    labels = torch.full((1, 5), -100)
    labels[0, 3:5] = torch.tensor([1, 2])
    long_logits = torch.randn(1, 7, 7)
    long_logits[0, 2], long_logits[0, 4] = logits[0, 2], logits[0, 2]  # each predicts token 1
    long_logits[0, 3], long_logits[0, 5] = logits[0, 3], logits[0, 3]  # each predicts token 2
    long_labels = torch.full((1, 7), -100)
    long_labels[0, 3:7] = torch.tensor([1, 2, 1, 2])
    assert simnpo_loss(long_logits, long_labels, 2.5, 0.0).item() == pytest.approx(
        simnpo_loss(logits, labels, 2.5, 0.0).item(), rel=1e-5)


# --- KL_Min ------------------------------------------------------------------------------------------


def test_every_position_kl_is_mllmu_bench_kl_div_batchmean():
    g = torch.Generator().manual_seed(1)
    current, original = torch.randn(2, 6, 11, generator=g), torch.randn(2, 6, 11, generator=g)
    theirs = F.kl_div(F.log_softmax(current, dim=-1), F.softmax(original, dim=-1), reduction="batchmean")
    p = original.double().softmax(-1)
    by_hand = (p * (p.log() - current.double().log_softmax(-1))).sum() / 2
    assert every_position_kl(original, current).item() == pytest.approx(theirs.item(), rel=1e-5)
    assert every_position_kl(original, current).item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert every_position_kl(original, original).item() == pytest.approx(0.0, abs=1e-6)


def test_kl_min_schedule_is_a_forget_pass_then_a_retain_pass_each_epoch():
    spec = get_method("kl_min")
    forget = [Example(f"f{i}", "", None) for i in range(5)]
    retain = [Example(f"r{i}", "", None) for i in range(7)]
    plan = spec.schedule(forget, retain, UnlearnConfig(epochs=2, batch_size=2), 0, spec.needs_retain)
    phases = ["forget" if f is not None else "retain" for f, _ in plan.batches]
    assert phases == ["forget"] * 3 + ["retain"] * 4 + ["forget"] * 3 + ["retain"] * 4
    assert plan.steps == 14


def test_default_schedule_pairs_each_forget_batch_with_a_cycled_retain_batch():
    spec = get_method("ga_klr")
    forget = [Example(f"f{i}", "", None) for i in range(6)]
    retain = [Example(f"r{i}", "", None) for i in range(2)]
    pairs = list(spec.schedule(forget, retain, UnlearnConfig(epochs=1, batch_size=2), 0, True).batches)
    assert len(pairs) == 3 and all(f is not None and r is not None for f, r in pairs)
    assert all(len(r) == 2 for _, r in pairs)  # the one retain batch, cycled
    assert all(r is None for _, r in get_method("npo").schedule(forget, retain, UnlearnConfig(batch_size=2), 0,
                                                                False).batches)


# --- parameters in profiles ----------------------------------------------------------------------------


def test_a_method_parameter_is_set_in_its_own_table():
    u = load_profile("tiny").unlearn
    assert method_params(u, get_method("npo")) == {"beta": 0.1}
    u = load_profile("tiny", ["unlearn.npo.beta=0.2", "unlearn.simnpo.gamma=1"]).unlearn
    assert method_params(u, get_method("npo")) == {"beta": 0.2}
    assert method_params(u, get_method("simnpo")) == {"beta": 2.5, "gamma": 1.0}  # an int is a float here
    assert method_params(u, get_method("ga")) == {}


@pytest.mark.parametrize(("override", "message"), [
    ("unlearn.beta=0.2", "unlearn.npo.beta"),  # the flat key of old profiles says where it went
    ("unlearn.npo.gamma=1.0", "npo has no parameter 'gamma' .*beta"),
    ("unlearn.npo.beta=-1", "must be > 0"),
    ("unlearn.npo.beta=\"big\"", "expected float"),
    ("unlearn.nosuch.x=1", "unknown unlearning method 'nosuch'"),
])
def test_a_wrong_method_parameter_is_one_line_when_the_profile_loads(override, message):
    with pytest.raises(ConfigError, match=message):
        load_profile("tiny", [override])


def test_kl_min_refuses_a_frozen_original_reference():
    with pytest.raises(ConfigError, match="every position"):
        load_profile("tiny", ['unlearn.methods=["kl_min"]', "unlearn.reference=original"])
    load_profile("tiny", ['unlearn.methods=["kl_min"]'])  # under "request" it runs


# --- request keys ----------------------------------------------------------------------------------------


def _key(profile, method):
    return request_key(profile, "start", get_method(method), "proj+llm", ["a"], ["b"])


def test_a_request_key_holds_its_own_method_parameters_only():
    base, other = load_profile("tiny"), load_profile("tiny", ["unlearn.npo.beta=0.2"])
    assert _key(base, "npo") != _key(other, "npo")
    assert _key(base, "ga") == _key(other, "ga") and _key(base, "ga_klr") == _key(other, "ga_klr")
    assert _key(base, "simnpo") != _key(load_profile("tiny", ["unlearn.simnpo.gamma=0.5"]), "simnpo")
    listed = load_profile("tiny", ['unlearn.methods=["npo"]'])  # which methods a profile runs is not a dependency
    assert _key(base, "npo") == _key(listed, "npo")
    assert _key(base, "npo") != _key(load_profile("tiny", ["unlearn.lr=0.01"]), "npo")


def test_a_built_in_request_key_is_the_one_its_units_were_first_made_under():
    """The key as first defined hashed the whole unlearn section (every method's parameters flat): a built-in
    method's units, and the seeds drawn from their keys, stay what they were."""
    p = load_profile("tiny")
    first = {"methods": ["ga", "ga_klr", "npo"], "epochs": 1, "batch_size": 16, "grad_accum": 1, "lr": 1e-3,
             "beta": 0.1, "kl_lambda": 1.0, "reference": "request"}
    for method in ("ga", "ga_klr", "npo"):
        assert _key(p, method) == key_of("unlearn", "start", method, "proj+llm", first, asdict(p.finetune), ["a"], ["b"])


def test_the_readme_shows_simnpo_as_it_ships():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    shipped = (root / "repro" / "train" / "methods" / "simnpo.py").read_text()
    code = shipped[shipped.index("from torch import Tensor"):].strip()
    assert f"```python\n{code}\n```" in (root / "README.md").read_text()


@pytest.mark.slow
def test_the_added_methods_run_under_all_and_sit_in_the_report(tmp_path, monkeypatch):
    """SimNPO and KL_Min chosen from the command line, with a parameter set there: `all` runs them beside GA
    and the report names them."""
    from small_model import MICRO

    from repro.cli import main
    from repro.experiments.results import read_results

    monkeypatch.setenv("PULSE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    sets = [x for o in [*MICRO, 'unlearn.methods=["ga", "simnpo", "kl_min"]', "unlearn.simnpo.gamma=0.5"]
            for x in ("--set", o)]
    assert main(["all", "--no-verify", "--out", str(out), *sets]) == 0
    records = read_results(out / "results.jsonl")
    for experiment in ("finetuned", "pretrained", "sustainability"):
        assert {r["method"] for r in records if r["experiment"] == experiment} == {"ga", "simnpo", "kl_min"}
    after = {r["method"]: r["model"] for r in records if r["experiment"] == "finetuned" and r["step"] == 1}
    assert len(set(after.values())) == 3  # three different unlearned models
    tables = (out / "report" / "tables.md").read_text()
    assert "SimNPO" in tables and "KL_Min" in tables


def test_npo_and_simnpo_need_a_positive_beta():
    from repro.errors import ReproError
    from repro.train.losses import npo_loss

    logits, labels = torch.randn(1, 4, 5), torch.tensor([[-100, -100, 1, 2]])
    for beta in (0.0, -1.0):
        with pytest.raises(ReproError, match="beta > 0"):
            npo_loss(torch.zeros(2), torch.zeros(2), beta)
        with pytest.raises(ReproError, match="beta > 0"):
            simnpo_loss(logits, labels, beta, 0.0)


def test_simnpo_counts_every_answer_token_wherever_it_starts():
    """An answer from the second position on, and a one-token answer: |y| is every answer token."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 5, 7, generator=g)
    labels = torch.tensor([[-100, 3, 4, 5, 6], [-100, -100, -100, -100, 2]])
    sums, lengths = _answer_logprobs_one_by_one(logits, labels)
    assert lengths == [4, 1]
    expected = -(2 / 2.5) * sum(math.log(1 / (1 + math.exp(2.5 * s / n))) for s, n in zip(sums, lengths)) / 2
    assert simnpo_loss(logits, labels, 2.5, 0.0).item() == pytest.approx(expected, rel=1e-5)


def test_a_schedules_steps_are_whole_optimiser_steps():
    """Micro-batches that do not fill a last accumulation make no step: the count is rounded down, an int."""
    forget = [Example(f"f{i}", "", None) for i in range(6)]   # 3 batches of 2 per epoch
    retain = [Example(f"r{i}", "", None) for i in range(4)]   # 2 batches of 2
    cfg = UnlearnConfig(epochs=1, batch_size=2, grad_accum=2)
    for name, steps in (("ga", 1), ("kl_min", 2)):  # 3 // 2; (3 + 2) // 2
        spec = get_method(name)
        plan = spec.schedule(forget, retain, cfg, 0, spec.needs_retain)
        assert plan.steps == steps and type(plan.steps) is int
