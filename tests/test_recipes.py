"""What the recipes hand to training, with training itself faked (repro/train/recipes.py): the steps they
ask for, the data they train and freeze on. No model is trained."""

from __future__ import annotations

import itertools

from llava_text import DIALECT
from micro_llava import tiny_llava

from repro.config import FinetuneConfig, PretrainConfig, UnlearnConfig
from repro.data.records import MCQ, Person
from repro.train import recipes
from repro.train.loop import Example
from repro.train.methods import get_method

FACE = b"face"
CELEBRITY = Person("001", "Retain_Set", FACE, (
    MCQ("Where does he live?", {"A": "Rome", "B": "Oslo"}, "A", "text"),
    MCQ("What is his job?", {"A": "cook", "B": "pilot"}, "B", "multimodal"),
), qa=(("Where does he live?", "Rome"), ("What is his job?", "pilot")))


def fake_train(calls):
    def train(model, params, batches, steps, lr, warmup, schedule, accum, desc, encode):
        calls.append({"steps": steps, "batches": list(itertools.islice(batches, 6)), "schedule": schedule})
        return []
    return train


def test_fine_tuning_asks_for_whole_optimiser_steps(monkeypatch):
    calls = []
    monkeypatch.setattr(recipes, "train", fake_train(calls))
    examples = [Example(f"q{i}", "a", None) for i in range(10)]  # 5 batches of 2 per epoch
    cfg = FinetuneConfig(epochs=1, batch_size=2, grad_accum=2, lora_r=2, lora_alpha=2)
    recipes.finetune(tiny_llava(), examples, cfg, 0, lambda batch: batch)
    assert calls[0]["steps"] == 2 and type(calls[0]["steps"]) is int  # 5 micro-batches make 2 whole steps


def test_pre_training_teaches_text_asked_questions_without_the_face(monkeypatch):
    """The tiny base model learns celebrities as the web knows them: a question the benchmark asks
    text-only is taught without the face."""
    calls = []
    monkeypatch.setattr(recipes, "train", fake_train(calls))
    cfg = PretrainConfig(steps=3, batch_size=64, letters=False)
    recipes.pretrain(tiny_llava(), [CELEBRITY], [], cfg, 0, lambda batch: batch, DIALECT)
    first_pass = [e for batch in calls[0]["batches"] for e in batch]  # batches are of one kind each
    text_asked = [e.image for e in first_pass if "Where does he live?" in e.prompt]
    face_asked = [e.image for e in first_pass if "What is his job?" in e.prompt]
    assert text_asked and face_asked
    assert set(text_asked) == {None} and set(face_asked) == {FACE}


def test_a_frozen_reference_holds_every_example_the_request_reads(monkeypatch):
    """reference = "original" in a chain: the chain's first model's logits on the forget examples, and on
    the retain examples for a method that reads them (GA+KLR), taken once before training."""
    seen = []
    monkeypatch.setattr(recipes, "FrozenReference", lambda model, batches: seen.append(
        sorted(e.prompt for b in batches for e in b)))
    forget = [Example(f"f{i}", "a", None) for i in range(3)]
    retain = [Example(f"r{i}", "a", None) for i in range(2)]
    for method, expected in (("ga_klr", ["f0", "f1", "f2", "r0", "r1"]), ("npo", ["f0", "f1", "f2"])):
        request = recipes.Request(get_method(method), {}, "proj+llm", forget, retain, 0)
        recipes.frozen_reference(None, request, UnlearnConfig(batch_size=2), lambda batch: batch)
        assert seen.pop() == expected
