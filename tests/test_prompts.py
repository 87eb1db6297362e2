"""Prompt strings and training labels (docs/design.md, "Fidelity decisions" and "Data formats")."""

from __future__ import annotations

import pytest
import torch
from llava_text import mcq_prompt, mmbench_prompt, training_text
from PIL import Image
from small_model import SMALL_MODEL

from repro.data.records import MCQ, MMBenchQuestion
from repro.errors import ReproError
from repro.model import (
    build_tiny_model,
    build_word_tokenizer,
    encode_prompts,
    encode_training_batch,
)

OPTS = {"A": "doctor", "B": "baker", "C": "pilot", "D": "judge"}
CFG = SMALL_MODEL


@pytest.fixture(scope="module")
def processor():
    texts = ["What is her job?", "She is a doctor.", "Where does Ada live?", "Paris"]
    return build_tiny_model(CFG, build_word_tokenizer(texts))[1]


def img() -> Image.Image:
    return Image.new("RGB", (32, 32), (200, 10, 10))


def test_mcq_prompt_multimodal_exact():
    q = MCQ("What is the occupation of this person?", OPTS, "A", "multimodal")
    assert mcq_prompt(q) == (
        "USER: <image>\nWhat is the occupation of this person?\nA: doctor\nB: baker\nC: pilot\nD: judge\n"
        "Just give ONE letter representing the answer directly.\nASSISTANT:"
    )


def test_mcq_prompt_text_exact():
    q = MCQ("What is the occupation of Ada?", OPTS, "B", "text")
    assert mcq_prompt(q) == (
        "USER:\nWhat is the occupation of Ada?\nA: doctor\nB: baker\nC: pilot\nD: judge\n"
        "Just give ONE letter representing the answer directly.\nASSISTANT:"
    )
    assert "<image>" not in mcq_prompt(q)


def mmb(hint: str, options: dict[str, str]) -> MMBenchQuestion:
    return MMBenchQuestion(
        index=7,
        question="What shape is shown?",
        hint=hint,
        options=options,
        answer="A",
        category="c",
        l2_category="l2",
        image=b"",
    )


def test_mmbench_prompt_exact():
    assert mmbench_prompt(mmb("Look closely.", {"A": "circle", "B": "square", "C": "star", "D": "ring"})) == (
        "USER: <image>\nLook closely.\nWhat shape is shown?\nA. circle\nB. square\nC. star\nD. ring\n"
        "Answer with the option's letter from the given choices directly.\nASSISTANT:"
    )
    # no hint line when the hint is empty; empty options left out
    assert mmbench_prompt(mmb("", {"A": "circle", "B": "square", "C": ""})) == (
        "USER: <image>\nWhat shape is shown?\nA. circle\nB. square\n"
        "Answer with the option's letter from the given choices directly.\nASSISTANT:"
    )


def test_mmbench_prompt_llava_v1_is_llavas_own_mmbench_prompt():
    """haotian-liu/LLaVA: model_vqa_mmbench.py builds '<image>\\n' + hint + '\\n' + question + '\\nA. a' ... +
    '\\n' + the instruction; conv_templates['vicuna_v1'].get_prompt() wraps it as system + ' USER: ' + message +
    ' ASSISTANT:' (sep ' ')."""
    assert mmbench_prompt(mmb("H", {"A": "a", "B": "b"}), "llava-v1") == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the user's questions. USER: <image>\nH\nWhat shape is shown?\nA. a\n"
        "B. b\nAnswer with the option's letter from the given choices directly. ASSISTANT:"
    )
    with pytest.raises(ReproError, match="unknown MMBench template 'vicuna' .known: llava-v1, plain"):
        mmbench_prompt(mmb("", {"A": "a"}), "vicuna")


def test_training_text_exact():
    p, a = training_text("What is her job?", "She is a doctor.", True)
    assert p + a == "USER: <image>\nWhat is her job?\nASSISTANT: She is a doctor.</s>"
    assert p.endswith("ASSISTANT:")
    p, a = training_text("Where does Ada live?", "Paris", False)
    assert p + a == "USER:\nWhere does Ada live?\nASSISTANT: Paris</s>"


def test_labels_cover_answer_only_in_mixed_batch(processor):
    tok = processor.tokenizer
    items = [
        (*training_text("What is her job?", "She is a doctor.", True), img()),
        (*training_text("Where does Ada live?", "Paris", False), None),
    ]
    batch = encode_training_batch(processor, items, CFG.max_length)
    assert batch["pixel_values"].shape == (1, 3, 32, 32)  # only the row with an image
    assert batch["attention_mask"][1, -1] == 0  # right padding
    for row, answer in enumerate(["She is a doctor .", "Paris"]):
        labels = batch["labels"][row]
        kept = labels[labels != -100].tolist()
        assert tok.convert_ids_to_tokens(kept) == answer.split() + ["</s>"]
        # the kept labels are the last real tokens of the row, and equal the input ids there
        n = int(batch["attention_mask"][row].sum())
        assert kept == batch["input_ids"][row, n - len(kept) : n].tolist()
        assert (labels[batch["attention_mask"][row] == 0] == -100).all()
    assert int((batch["input_ids"][0] == tok.convert_tokens_to_ids("<image>")).sum()) == 16
    assert int((batch["input_ids"][1] == tok.convert_tokens_to_ids("<image>")).sum()) == 0


def test_mixed_batch_trains_through_llava(processor):
    model, _ = build_tiny_model(CFG, processor.tokenizer)
    items = [
        (*training_text("Where does Ada live?", "Paris", False), None),
        (*training_text("What is her job?", "She is a doctor.", True), img()),
    ]
    loss = model(**encode_training_batch(processor, items, CFG.max_length)).loss
    assert torch.isfinite(loss)
    loss.backward()


def test_encode_prompts_left_pads(processor):
    batch = encode_prompts(
        processor,
        ["USER:\nWhere does Ada live?\nASSISTANT:", "USER: <image>\nWhat is her job?\nASSISTANT:"],
        [None, img()],
        CFG.max_length,
    )
    colon = processor.tokenizer.convert_tokens_to_ids(":")
    assert (batch["input_ids"][:, -1] == colon).all()  # last position = after "ASSISTANT:" for every row
    assert batch["attention_mask"][0, 0] == 0 and batch["attention_mask"][:, -1].all()
    assert batch["position_ids"][0, -1] == batch["attention_mask"][0].sum() - 1


def test_image_count_and_length_checked(processor):
    with pytest.raises(ReproError, match="image"):
        encode_prompts(processor, ["USER: <image>\nx\nASSISTANT:"], [None], CFG.max_length)
    with pytest.raises(ReproError, match="max_length"):
        encode_prompts(processor, ["USER: <image>\nWhat is her job?\nASSISTANT:"], [img()], 10)
