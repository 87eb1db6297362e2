"""The option log-likelihood scorer against its definition, computed one option at a time: the option whose
text, after the question's context, has the highest summed log-probability (lm-evaluation-harness's
multiple-choice `acc`). The oracle runs each (question, option) alone, unpadded, and sums the option
tokens' log-probabilities itself; the scorer batches, pads, and takes a one-pass shortcut for questions
whose options are single tokens."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from llava_text import DIALECT
from small_model import SMALL_MODEL

from repro.choices import load_profile
from repro.data.mllmu import load_people
from repro.data.mmbench import load_mmbench
from repro.data.world import write_world
from repro.eval.items import Item, mmbench_items, person_items
from repro.eval.scoring import predict
from repro.model.factory import build_tiny_model
from repro.model.prompts import to_pil
from repro.model.tokenizer import build_word_tokenizer

MODEL = dataclasses.replace(SMALL_MODEL, max_length=256)
NEAR_TIE = 1e-4  # options this close may swap under batched float sums: not a verdict on the scorer


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Items of people (image and text questions) and of mini-MMBench, and a tokenizer over their texts."""
    root = tmp_path_factory.mktemp("world")
    profile = load_profile("tiny", ["world.fictional=4", "world.celebrities=2", "world.mmbench_dev=12",
                                    "world.mmbench_train=2"])
    write_world(root, profile.world, seed=5)
    people = load_people(root / "MLLMU-Bench", "Full_Set") + load_people(root / "MLLMU-Bench", "Retain_Set")
    items = person_items(people, DIALECT) + mmbench_items(load_mmbench(root / "MMBench" / "MMBench_DEV_EN.tsv"), DIALECT)
    items += [longer_options(it) for it in items[::3]]
    texts = [it.context + " " + o for it in items for o in it.options.values()]
    return items, build_word_tokenizer(texts)


def longer_options(item: Item) -> Item:
    """The same question with options of one to three words (the world's are single words): the scorer's
    path for options of several tokens, options of unequal length included."""
    words = list(item.options.values())
    options = {k: " ".join(words[i: i + 1 + i % 3]) for i, k in enumerate(sorted(item.options))}
    return dataclasses.replace(item, uid=f"{item.uid}-long", options=options)


@torch.no_grad()
def option_logprob(model, processor, item, letter: str) -> float:
    """log p(" option" | context), from one unpadded forward pass over the context and the option."""
    images = [to_pil(item.image)] if item.image is not None else None
    context = processor(text=[item.context], images=images, return_tensors="pt")["input_ids"][0]
    full = processor(text=[item.context + " " + item.options[letter]], images=images, return_tensors="pt")
    ids = full["input_ids"][0]
    assert torch.equal(ids[: len(context)], context), "the option's tokens do not extend the context's"
    logp = model(**full).logits[0].double().log_softmax(-1)
    return sum(logp[t - 1, ids[t]].item() for t in range(len(context), len(ids)))


def test_option_loglik_picks_the_option_computed_one_at_a_time(world):
    items, tokenizer = world
    option_lengths = {len(tokenizer(" " + o, add_special_tokens=False)["input_ids"]) for it in items
                      for o in it.options.values()}
    assert 1 in option_lengths and max(option_lengths) > 1, "both of the scorer's paths must be exercised"
    assert {it.modality for it in items} == {"multimodal", "text"}
    for seed in (0, 1):  # two random models: different picks, the same definition
        model, processor = build_tiny_model(MODEL, tokenizer, seed=seed)
        model.eval()
        got = predict(model, processor, items, "option-loglik", 8, MODEL.max_length)
        compared = 0
        for it in items:
            scores = {letter: option_logprob(model, processor, it, letter) for letter in sorted(it.options)}
            best = max(scores, key=scores.get)  # ties to the first letter, as the definition says
            runner_up = max((s for k, s in scores.items() if k != best), default=float("-inf"))
            if scores[best] - runner_up < NEAR_TIE:
                continue
            compared += 1
            assert got[it.uid] == best, f"model {seed}, {it.uid}: scorer {got[it.uid]}, by definition {best} {scores}"
        assert compared >= 0.9 * len(items)
        assert len(set(got.values())) > 1, "every pick the same letter: the comparison would say little"
