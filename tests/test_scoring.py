"""The fast first-token scorer gives exactly what greedy generation + MLLMU-Bench's parse gives."""

from __future__ import annotations

import re

from llava_text import DIALECT
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
    items = person_items(people, DIALECT) + mmbench_items(questions, DIALECT)
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


# ---- the scorers' parts -------------------------------------------------------------------------------------


def test_parse_letter_reads_option_letters_only():
    assert parse_letter("X marks it") == "" and parse_letter("Z") == ""  # letters, but no option's


def test_the_prompt_limit_leaves_room_for_the_generated_answer_under_letter_scoring():
    import dataclasses

    from repro.eval.scoring import prompt_limit

    e = load_profile("llava-1.5-13b").eval
    assert e.scoring == "letter" and prompt_limit(4096, e) == 4096 - e.generate_tokens
    assert prompt_limit(4096, dataclasses.replace(e, generate_tokens=7)) == 4089
    assert prompt_limit(4096, dataclasses.replace(e, scoring="option-loglik")) == 4096  # nothing is generated


def _png(mode: str, side: int = 4) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (side, side)).save(buf, format="PNG")
    return buf.getvalue()


def test_images_reach_the_processor_as_rgb_whatever_their_mode():
    from repro.eval.items import Item
    from repro.eval.scoring import _images

    for mode in ("L", "RGBA", "P", "RGB"):
        (image,) = _images(Item("u", "", "", {"A": "a"}, "A", _png(mode), "multi"))
        assert image.mode == "RGB"
    assert _images(Item("u", "", "", {"A": "a"}, "A", None, "text")) is None
    # a demonstration's image comes first, in the order of the prompt's <image> tokens
    shown = _images(Item("u", "", "", {"A": "a"}, "A", _png("RGB", 4), "multi", demo_images=(_png("RGB", 6),)))
    assert [im.size for im in shown] == [(6, 6), (4, 4)]


def test_batches_are_of_one_kind_at_most_the_batch_size_and_hold_every_item_once():
    from repro.eval.items import Item
    from repro.eval.scoring import length_batches

    png = _png("RGB")
    items = [Item(f"u{i}", "p" * (i % 5), "", {"A": "a"}, "A", png if i % 3 else None, "multi") for i in range(23)]
    batches = length_batches(items, 4, lambda it: len(it.prompt))
    assert sorted(it.uid for b in batches for it in b) == sorted(it.uid for it in items)
    assert all(len(b) <= 4 for b in batches)
    assert all(len({it.image is None for it in b}) == 1 for b in batches)  # images and text never mix
    assert len(batches) == 2 + 4  # 8 text items in 2 batches, 15 image items in 4: only the last of a kind short


def test_prompts_showing_a_demonstrations_face_are_batched_apart_from_one_face_prompts():
    from repro.eval.items import Item
    from repro.eval.scoring import length_batches, shown_images

    png = _png("RGB")
    # one-shot fictional questions (two faces) and zero-shot celebrity questions (one face), lengths interleaved
    items = [Item(f"u{i}", "p" * i, "", {"A": "a"}, "A", png, "multi", demo_images=(png,) if i % 2 else ())
             for i in range(12)]
    batches = length_batches(items, 4, lambda it: len(it.prompt))
    assert sorted(it.uid for b in batches for it in b) == sorted(it.uid for it in items)
    assert all(len({shown_images(it) for it in b}) == 1 for b in batches)  # 576 image tokens apart: never mixed
    assert len(batches) == 4  # 6 of each kind: a full and a short batch each


class FakeDist:
    """Rank 1 of 2: gather returns rank 0's part, then this rank's."""
    rank, world = 1, 2

    def gather(self, part: dict) -> list[dict]:
        return [{"other": "A"}, part]


def test_under_a_launcher_a_rank_scores_its_round_robin_share_and_gets_everyones(monkeypatch):
    from repro import distributed
    from repro.eval.scoring import _gathered, _mine

    batches = [["b0"], ["b1"], ["b2"], ["b3"], ["b4"]]
    assert _mine(batches) == batches and _gathered({"mine": "B"}) == {"mine": "B"}  # alone: everything
    monkeypatch.setattr(distributed, "current", lambda: FakeDist())
    assert _mine(batches) == [["b1"], ["b3"]]
    assert _gathered({"mine": "B"}) == {"other": "A", "mine": "B"}


def test_oom_halves_only_the_batch_that_did_not_fit_and_says_so(capsys):
    import torch

    from repro.eval.scoring import halving_on_oom

    seen = []

    def score(batch):
        seen.append(len(batch))
        if len(batch) > 1:
            raise torch.cuda.OutOfMemoryError("simulated")
        return {batch[0]: "A"}

    assert halving_on_oom(score, list("abcd"), "mmbench") == dict.fromkeys("abcd", "A")
    assert seen == [4, 2, 1, 1, 2, 1, 1]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == ("pulse-repro: mmbench: out of GPU memory on a batch of 4; scoring it as batches of 2 and 2 "
                        "(lower eval.batch_size to avoid the retry)")
    assert len(lines) == 3 and all(line.startswith("pulse-repro: mmbench: ") for line in lines)
    halving_on_oom(score, list("ab"))
    assert capsys.readouterr().err.startswith("pulse-repro: eval: out of GPU memory on a batch of 2")


def test_a_single_item_that_does_not_fit_is_an_error():
    import pytest
    import torch

    from repro.eval.scoring import halving_on_oom

    def never_fits(batch):
        raise torch.cuda.OutOfMemoryError("simulated")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        halving_on_oom(never_fits, ["a"])


def test_predict_hands_every_setting_to_the_profiles_scoring():
    from repro.eval.scoring import SCORINGS

    calls = []
    SCORINGS.add("recording", lambda *args: calls.append(args) or {"u": "A"})
    try:
        class Model:
            def eval(self):
                calls.append("eval")

        model = Model()
        assert predict(model, "proc", ["item"], "recording", 8, 512, "mmbench", "vlmevalkit", 7) == {"u": "A"}
        assert calls == ["eval", (model, "proc", ["item"], 8, 512, "mmbench", "vlmevalkit", 7)]
        assert predict(model, "proc", [], "recording", 8, 512) == {}  # nothing to score: no call
    finally:
        SCORINGS.remove("recording")


def test_single_token_options_take_the_one_pass_path_and_others_do_not(tmp_path):
    from repro.eval.items import Item
    from repro.eval.scoring import _single_token_options

    tok = build_word_tokenizer(["circle square star ring big red"])
    one = Item("u", "", "", {"A": "circle", "B": "square", "C": "star"}, "A", None, "text")
    ids = _single_token_options(tok, one, DIALECT)
    assert ids is not None and {k: tok.decode([v]).strip() for k, v in ids.items()} == one.options
    two = Item("u", "", "", {"A": "circle", "B": "big red"}, "A", None, "text")
    assert _single_token_options(tok, two, DIALECT) is None
