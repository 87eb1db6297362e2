"""Unlearned models are kept as adapter units over their parent: rebuilt exactly in a new process's
session, and chained under both reference modes (`unlearn.reference`)."""

from __future__ import annotations

import math

import pytest
import torch
from llava_text import DIALECT
from safetensors.torch import load_file
from small_model import MICRO

from repro.choices import load_profile
from repro.experiments.models import adapter_unit
from repro.experiments.session import Session
from repro.experiments.unlearn import unlearn_request
from repro.train.examples import person_examples


def _session(run_dir, *extra: str) -> Session:
    return Session(load_profile("tiny", [*MICRO, "unlearn.batch_size=4", *extra]), run_dir, units=run_dir / "units")


def _chain(session: Session, method: str, n: int = 2) -> tuple[str, list[str], list[list[float]]]:
    splits = session.data.fictional_splits
    start = session.finetuned()
    retain = session.data.people(splits["retain"])
    keys, losses, key = [], [], start
    for shard in splits["shards"][:n]:
        key, step_losses = unlearn_request(session, key, session.data.people(shard), retain, method, "proj+llm")
        keys.append(key)
        losses.append(step_losses)
    return start, keys, losses


def _logits(model, session: Session) -> torch.Tensor:
    person = session.data.people(session.data.fictional_splits["unlearn"])[0]
    batch = session.encode(person_examples([person], DIALECT)[:2])
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


@pytest.mark.parametrize("mode", ["request", "original"])
def test_a_chain_is_rebuilt_exactly_from_its_units_in_a_new_session(tmp_path, mode):
    first = _session(tmp_path, f"unlearn.reference={mode}")
    _, keys, _ = _chain(first, "ga")
    live = _logits(first.models.model(keys[-1]), first).clone()
    again = _session(tmp_path, f"unlearn.reference={mode}")  # a resumed process: nothing in memory
    again.finetuned()
    _, keys_again, losses = _chain(again, "ga")
    assert keys_again == keys and losses == [[], []], "a request with a unit on disk was trained again"
    assert torch.equal(_logits(again.models.model(keys[-1]), again), live)


def test_a_request_after_a_resume_trains_the_adapter_an_uninterrupted_run_trains(tmp_path):
    """The third request of a chain, trained in a new session whose start model must first be rebuilt from
    the first two units, writes the same adapter as in the session that trained the whole chain: rebuilding
    (which attaches adapters, drawing initial weights) leaves the RNG where the request seeded it."""
    first = _session(tmp_path / "clean")
    _, keys, _ = _chain(first, "ga", n=3)
    clean_unit = load_file(str(first.store.path(adapter_unit(keys[-1]))))
    resumed = _session(tmp_path / "resumed")
    _chain(resumed, "ga", n=2)
    resumed = _session(tmp_path / "resumed")  # a new process: units on disk, nothing live
    resumed.finetuned()
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    resumed.models.model(keys[1])  # rebuilt from the fine-tuned model and two units
    assert torch.equal(torch.get_rng_state(), before), "rebuilding a model moved the RNG"
    resumed = _session(tmp_path / "resumed")
    resumed.finetuned()
    _, keys_again, losses = _chain(resumed, "ga", n=3)
    assert keys_again == keys and losses[:2] == [[], []] and losses[2]
    again = load_file(str(resumed.store.path(adapter_unit(keys[-1]))))
    assert again.keys() == clean_unit.keys() and all(torch.equal(again[k], clean_unit[k]) for k in again)


def test_every_request_trains_a_fresh_adapter_over_its_start_and_remembers_its_chains_root(tmp_path):
    for mode in ("request", "original"):
        session = _session(tmp_path / mode, f"unlearn.reference={mode}")
        start, keys, _ = _chain(session, "ga")
        assert [session.models.adapter(k).parent for k in keys] == [start, keys[0]]
        assert [session.models.adapter(k).root for k in keys] == [start, start]
        assert session.models.adapter(start) is None  # the fine-tuned model is kept whole, not as an adapter


def test_npo_reference_is_the_request_start_or_the_original_model(tmp_path):
    """NPO's loss is (2/beta) log 2 exactly when the policy is the reference. Under "request" every
    request starts there; under "original" the second request starts from a model that already
    forgot the first shard, so its first loss is below that."""
    at_reference = 2 / 0.1 * math.log(2)
    _, _, losses = _chain(_session(tmp_path / "r", "unlearn.npo.beta=0.1"), "npo")
    assert losses[0][0] == pytest.approx(at_reference, rel=1e-5)
    assert losses[1][0] == pytest.approx(at_reference, rel=1e-5)
    _, _, losses = _chain(_session(tmp_path / "o", "unlearn.npo.beta=0.1", "unlearn.reference=original"), "npo")
    assert losses[0][0] == pytest.approx(at_reference, rel=1e-5)
    assert losses[1][0] < at_reference - 1e-3


def test_a_torn_adapter_unit_is_trained_again(tmp_path):
    first = _session(tmp_path)
    _, keys, _ = _chain(first, "ga", n=1)
    unit = first.store.path(adapter_unit(keys[0]))
    unit.write_bytes(unit.read_bytes()[:100])
    again = _session(tmp_path)
    again.finetuned()
    _, _, losses = _chain(again, "ga", n=1)
    assert losses[0], "a torn unit was taken for a trained model"


def test_frozen_reference_gives_the_models_logits_at_the_answer_positions(tmp_path):
    from repro.errors import ReproError
    from repro.train.reference import FrozenReference, model_logits

    session = _session(tmp_path)
    model = session.models.model(session.finetuned())
    people = session.data.people(session.data.fictional_splits["unlearn"])
    examples = person_examples(people[:2], DIALECT)
    batch, other = session.encode(examples[:3]), session.encode(examples[3:5])
    frozen = FrozenReference(model, [session.encode(examples[:1]), session.encode(examples[1:3])])
    with torch.no_grad():
        want = model_logits(model.eval(), batch)
    got = frozen(batch)  # the same examples in another grouping
    answers = batch["labels"][:, 1:] != -100
    assert torch.allclose(got[:, :-1][answers], want[:, :-1][answers], atol=1e-5)
    assert not got[:, :-1][~answers].any()  # nothing but the answer positions is read or kept
    with pytest.raises(ReproError, match="no logits for an example"):
        frozen(other)
