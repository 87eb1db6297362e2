"""Unlearned models are kept as adapter units over their parent: rebuilt exactly in a new process's
session, and chained under both reference modes (`unlearn.reference`)."""

from __future__ import annotations

import math

import pytest
import torch
from small_model import MICRO

from repro.config import load_profile
from repro.experiments.session import Session
from repro.experiments.unlearn import unlearn_request
from repro.train.examples import person_examples


def _session(run_dir, *extra: str) -> Session:
    return Session(load_profile("tiny", [*MICRO, "unlearn.batch_size=4", *extra]), run_dir)


def _chain(session: Session, method: str, n: int = 2) -> tuple[str, list[str], list[list[float]]]:
    splits = session.fictional_splits
    start = session.finetuned()
    retain = session.people(splits["retain"])
    keys, losses, key = [], [], start
    for shard in splits["shards"][:n]:
        key, step_losses = unlearn_request(session, key, session.people(shard), retain, method, "proj+llm")
        keys.append(key)
        losses.append(step_losses)
    return start, keys, losses


def _logits(model, session: Session) -> torch.Tensor:
    person = session.people(session.fictional_splits["unlearn"])[0]
    batch = session.encode(person_examples([person])[:2])
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


@pytest.mark.parametrize("mode", ["request", "original"])
def test_a_chain_is_rebuilt_exactly_from_its_units_in_a_new_session(tmp_path, mode):
    first = _session(tmp_path, f"unlearn.reference={mode}")
    _, keys, _ = _chain(first, "ga")
    live = _logits(first.model(keys[-1]), first).clone()
    again = _session(tmp_path, f"unlearn.reference={mode}")  # a resumed process: nothing in memory
    again.finetuned()
    _, keys_again, losses = _chain(again, "ga")
    assert keys_again == keys and losses == [[], []], "a request with a unit on disk was trained again"
    assert torch.equal(_logits(again.model(keys[-1]), again), live)


def test_each_request_has_its_own_parent_under_request_and_the_chains_first_model_under_original(tmp_path):
    request = _session(tmp_path / "r")
    start, keys, _ = _chain(request, "ga")
    assert [request.adapter(k).parent for k in keys] == [start, keys[0]]
    original = _session(tmp_path / "o", "unlearn.reference=original")
    start, keys, _ = _chain(original, "ga")
    assert [original.adapter(k).parent for k in keys] == [start, start]
    assert original.adapter(start) is None  # the fine-tuned model is kept whole, not as an adapter


def test_npo_reference_is_the_request_start_or_the_original_model(tmp_path):
    """NPO's loss is (2/beta) log 2 exactly when the policy is the reference. Under "request" every
    request starts there; under "original" the second request starts from a model that already
    forgot the first shard, so its first loss is below that."""
    at_reference = 2 / 0.1 * math.log(2)
    _, _, losses = _chain(_session(tmp_path / "r", "unlearn.beta=0.1"), "npo")
    assert losses[0][0] == pytest.approx(at_reference, rel=1e-5)
    assert losses[1][0] == pytest.approx(at_reference, rel=1e-5)
    _, _, losses = _chain(_session(tmp_path / "o", "unlearn.beta=0.1", "unlearn.reference=original"), "npo")
    assert losses[0][0] == pytest.approx(at_reference, rel=1e-5)
    assert losses[1][0] < at_reference - 1e-3


def test_a_torn_adapter_unit_is_trained_again(tmp_path):
    first = _session(tmp_path)
    _, keys, _ = _chain(first, "ga", n=1)
    unit = first.adapter_unit(keys[0])
    unit.write_bytes(unit.read_bytes()[:100])
    again = _session(tmp_path)
    again.finetuned()
    _, _, losses = _chain(again, "ga", n=1)
    assert losses[0], "a torn unit was taken for a trained model"
