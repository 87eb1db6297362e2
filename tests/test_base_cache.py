"""The tiny base model is pre-trained once per kit cache and found there by every later session, whatever its
run directory or unit store: within one test session, each base model the tests need is pre-trained once
(tests/conftest.py sets one cache per test session)."""

from __future__ import annotations

import torch
from small_model import MICRO

from repro.choices import load_profile
from repro.experiments import base_model
from repro.experiments.session import Session


def test_a_base_model_is_pretrained_once_per_cache_and_loaded_after(tmp_path, monkeypatch):
    monkeypatch.setenv("PULSE_CACHE", str(tmp_path / "cache"))  # empty: this test's first session pre-trains
    pretrained = []
    real = base_model.pretrain

    def counted(*args, **kwargs):
        pretrained.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(base_model, "pretrain", counted)
    profile = load_profile("tiny", MICRO)
    weights = []
    for name in ("first", "second", "third"):
        session = Session(profile, tmp_path / name / "run", units=tmp_path / name / "units")
        model = session.models.model(session.base_key)
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    assert len(pretrained) == 1
    assert all(torch.equal(weights[0][k], w[k]) for w in weights[1:] for k in weights[0])
    # another base model (another pre-training) is pre-trained, once, beside it
    other = load_profile("tiny", [*MICRO, "pretrain.steps=3"])
    for name in ("fourth", "fifth"):
        Session(other, tmp_path / name / "run", units=tmp_path / name / "units").models  # noqa: B018
    assert len(pretrained) == 2
