"""The fast first-token scorer gives exactly what greedy generation + MLLMU-Bench's parse gives."""

from __future__ import annotations

import re

from small_model import WORD_LEVEL_TOKENS

from repro.choices import load_profile
from repro.data.mllmu import load_people
from repro.data.mmbench import load_mmbench
from repro.data.world import write_world
from repro.eval.benchmarks import BENCHMARKS
from repro.eval.intervals import measured
from repro.eval.items import mmbench_items, person_items
from repro.eval.metrics import person_accuracy
from repro.eval.scoring import parse_letter, predict, score_letter
from repro.model.factory import build_tiny_model
from repro.model.tokenizer import build_word_tokenizer


def _small_world(tmp_path):
    profile = load_profile("tiny", ["world.fictional=12", "world.celebrities=8", "world.mmbench_dev=30",
                                    "world.mmbench_train=10"])
    write_world(tmp_path, profile.world, seed=3)
    people = load_people(tmp_path / "MLLMU-Bench", "Full_Set") + load_people(tmp_path / "MLLMU-Bench", "Retain_Set")
    questions = load_mmbench(tmp_path / "MMBench" / "MMBench_DEV_EN.tsv")
    items = person_items(people) + mmbench_items(questions)
    texts = [it.prompt for it in items] + [it.context + " " + o for it in items for o in it.options.values()]
    return profile, items, build_word_tokenizer(texts)


def test_parse_letter_is_mllmu_benchs_first_character_rule():
    assert parse_letter(" b) because") == "B"
    assert parse_letter("A") == "A"
    assert parse_letter("E") == ""
    assert parse_letter("  ") == ""
    assert parse_letter("The answer is A") == ""


def test_fast_and_generate_agree_on_every_item(tmp_path):
    profile, items, tokenizer = _small_world(tmp_path)
    for seed in (0, 1):  # two random models: their greedy answers differ, the two scorers must not
        model, processor = build_tiny_model(profile.model, tokenizer, seed=seed)
        fast = score_letter(model, processor, items, 16, profile.model.max_length, "fast",
                            new_tokens=WORD_LEVEL_TOKENS)
        slow = score_letter(model, processor, items, 16, profile.model.max_length, "generate",
                            new_tokens=WORD_LEVEL_TOKENS)
        assert len(fast) == len(items)
        assert fast == slow


def test_letter_scoring_follows_a_model_that_prefers_a_letter(tmp_path):
    profile, items, tokenizer = _small_world(tmp_path)
    model, processor = build_tiny_model(profile.model, tokenizer, seed=0)
    c = tokenizer.convert_tokens_to_ids("C")

    def prefer_c(module, args, logits):  # every prediction must become C
        logits = logits.clone()
        logits[..., c] += 1e4
        return logits

    model.lm_head.register_forward_hook(prefer_c)
    preds = predict(model, processor, items, "letter", 16, profile.model.max_length)
    # MLLMU-Bench's rule reads a letter only when it names one of the question's options
    assert {it.uid: preds[it.uid] for it in items} == {it.uid: "C" if "C" in it.options else "" for it in items}
    assert "C" in set(preds.values())
    acc = measured(items, preds, lambda it: it.person or it.uid, 100, 0)
    expected = 100.0 * sum(it.answer == "C" for it in items) / len(items)
    assert abs(acc["accuracy"] - expected) < 1e-3


def test_option_loglik_returns_an_option_for_every_item(tmp_path):
    profile, items, tokenizer = _small_world(tmp_path)
    model, processor = build_tiny_model(profile.model, tokenizer, seed=0)
    preds = predict(model, processor, items[:40], "option-loglik", 16, profile.model.max_length)
    assert all(preds[it.uid] in it.options for it in items[:40])


def test_metrics_split_by_modality_person_and_circular_group():
    from repro.eval.items import Item

    def item(uid, answer, modality="multimodal", person="p", group=-1):
        return Item(uid, "", "", {"A": "x", "B": "y"}, answer, None, modality, person=person, group=group)

    items = [item("1", "A", "multimodal", "p1"), item("2", "A", "text", "p1"), item("3", "B", "text", "p2")]
    preds = {"1": "A", "2": "B", "3": "B"}
    def by_person(asked):
        got = measured(asked, preds, lambda it: it.person, 100, 0)
        return got["accuracy"], got["n"], got["per_cluster"]

    assert by_person(items) == (round(200 / 3, 4), 3, {"p1": [1, 2], "p2": [1, 1]})
    assert by_person(items[:1]) == (100.0, 1, {"p1": [1, 1]})
    assert by_person(items[1:]) == (50.0, 2, {"p1": [0, 1], "p2": [1, 1]})
    assert person_accuracy(items, preds) == {"p1": 50.0, "p2": 100.0}
    circ = [item("5", "A", group=5), item("1000005", "B", group=5), item("6", "A", group=6)]
    mmbench = BENCHMARKS.get("mmbench").records
    got = {split: score(circ, {"5": "A", "1000005": "A", "6": "A"}, 100, 0) for split, score in mmbench.items()}
    assert (got["mmbench_circular"]["accuracy"], got["mmbench_circular"]["n"]) == (50.0, 2)  # group 5 fails
    assert (got["mmbench"]["accuracy"], got["mmbench"]["n"]) == (100.0, 2)  # single pass: the originals


def test_a_batch_that_runs_out_of_gpu_memory_is_scored_in_halves(tmp_path, capsys):
    import torch

    profile, items, tokenizer = _small_world(tmp_path)
    model, processor = build_tiny_model(profile.model, tokenizer, seed=0)
    items = items[:24]
    want = {s: predict(model, processor, items, s, 1, profile.model.max_length) for s in ("letter", "option-loglik")}

    def small_batches_only(module, args, kwargs):  # a GPU that holds at most 3 sequences at once
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[0] > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    model.register_forward_pre_hook(small_batches_only, with_kwargs=True)
    for scoring, expected in want.items():
        assert predict(model, processor, items, scoring, 16, profile.model.max_length) == expected
    err = capsys.readouterr().err
    assert re.search(r"out of GPU memory on a batch of (\d+); scoring it as batches of (\d+) and (\d+)", err)
    assert all(int(a) + int(b) == int(n) for n, a, b in
               re.findall(r"a batch of (\d+); scoring it as batches of (\d+) and (\d+)", err))
