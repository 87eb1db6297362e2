"""What an unlearning method is given, read at its input: every forget batch row of a request is one of
the forget people's training examples (each of them once an epoch), and every retain row one of the retain
people's. The unit record naming the right people is not enough: a request could record them and train on
others."""

from __future__ import annotations

from collections import Counter

import pytest

from repro.experiments.session import Session
from repro.experiments.unlearn import unlearn_request
from repro.model.prompts import IGNORE, encode_training_batch
from repro.train import recipes
from repro.train.examples import knowledge_examples


def _rows(tokenizer, batch: dict) -> list[str]:
    """Each row's real tokens, decoded: prompt and answer as the model reads them."""
    return [tokenizer.decode(ids[mask.bool()].tolist()) for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]


def _expected(session, people) -> Counter:
    examples = knowledge_examples(people, session.profile.finetune, session.data.dialect)
    rows = Counter()
    for e in examples:
        batch = encode_training_batch(session.processor, [(e.prompt, e.answer, e.image)], 10 ** 6)
        rows.update(_rows(session.processor.tokenizer, batch))
    return rows


@pytest.mark.parametrize("method", ["ga", "ga_klr"])
def test_a_request_trains_on_exactly_its_forget_and_retain_people(method, micro_base, tmp_path, monkeypatch):
    profile, _ = micro_base
    session = Session(profile, tmp_path / "run", units=tmp_path / "units")
    splits = session.data.fictional_splits
    forget = session.data.people(splits["shards"][0])
    retain = session.data.people(splits["retain"])
    seen = {"forget": Counter(), "retain": Counter()}
    real = recipes.UnlearnStep

    def recording(forget_batch, retain_batch, *rest):
        for name, batch in (("forget", forget_batch), ("retain", retain_batch)):
            if batch is not None:
                assert (batch["labels"] != IGNORE).any()
                seen[name].update(_rows(session.processor.tokenizer, batch))
        return real(forget_batch, retain_batch, *rest)

    monkeypatch.setattr(recipes, "UnlearnStep", recording)
    unlearn_request(session, session.finetuned(), forget, retain, method, "proj+llm")
    once = _expected(session, forget)
    assert seen["forget"] == Counter({row: n * profile.unlearn.epochs for row, n in once.items()})
    retained = _expected(session, retain)
    if method == "ga":  # gradient ascent reads no retain data
        assert not seen["retain"]
    else:
        assert seen["retain"] and set(seen["retain"]) <= set(retained)
