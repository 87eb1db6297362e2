"""The evaluation cache (predictions kept as units in the store, docs/design.md "Units, keys and the store")
against the predictions computed afresh: a changed model, or a changed question under the same id, is
scored again; the same model and questions are read back, in this session and in a new one."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from repro.eval import answering
from repro.eval.items import person_items
from repro.eval.scoring import predict, prompt_limit
from repro.experiments.session import Session
from repro.model.factory import context_length


@pytest.fixture
def scored(monkeypatch):
    """The models the session's evaluations actually ran (the others were read from the store)."""
    ran = []

    def counted(model, *args, **kwargs):
        ran.append(model)
        return predict(model, *args, **kwargs)

    monkeypatch.setattr(answering, "predict", counted)  # where the session's letter predictions are computed
    return ran


def fresh(session: Session, key: str, items) -> dict[str, str]:
    """The predictions of model `key` computed now, past any cache."""
    model = session.models.model(key)
    e = session.profile.eval
    return predict(model, session.processor, items, e.scoring, e.batch_size, prompt_limit(context_length(model), e))


def test_a_changed_model_is_scored_again_and_the_same_model_is_read_back(tmp_path, scored, micro_base):
    profile, _ = micro_base
    session = Session(profile, tmp_path / "run", units=tmp_path / "units")
    items = person_items(session.data.split("pool"), session.data.dialect)
    base = session.evaluate(session.base_key, items)
    assert len(scored) == 1 and base == fresh(session, session.base_key, items)

    model = session.models.model(session.base_key)
    with torch.no_grad():  # another model: the same architecture, other weights, under its own key
        torch.manual_seed(0)
        model.lm_head.weight.add_(torch.randn_like(model.lm_head.weight))
    session.models.keep("changed-model")
    changed = session.evaluate("changed-model", items)
    assert len(scored) == 2, "the changed model's predictions were read from the unchanged model's unit"
    assert changed == fresh(session, "changed-model", items)
    assert changed != base, "the change moved no prediction: the check above would be empty"

    assert session.evaluate(session.base_key, items) == base and len(scored) == 2  # read back, not scored
    again = Session(profile, tmp_path / "run", units=tmp_path / "units")  # a new process over the same store
    assert again.evaluate(again.base_key, items) == base and len(scored) == 2


def test_a_question_changed_under_the_same_id_is_scored_again(tmp_path, scored, micro_base):
    session = Session(micro_base[0], tmp_path / "run", units=tmp_path / "units")
    items = [it for it in person_items(session.data.split("pool"), session.data.dialect) if it.image is not None][:8]
    session.evaluate(session.base_key, items)
    other_face = next(it.image for it in person_items(session.data.split("retain"), session.data.dialect) if it.image is not None)
    assert other_face != items[0].image
    for changed in ([dataclasses.replace(items[0], image=other_face), *items[1:]],
                    [dataclasses.replace(items[0], prompt=items[0].prompt + " "), *items[1:]]):
        before = len(scored)
        assert session.evaluate(session.base_key, changed) == fresh(session, session.base_key, changed)
        assert len(scored) == before + 1, "a changed question was answered from the cache"
