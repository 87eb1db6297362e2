"""Tiny LLaVA factory: tokenizer, build, image-token check, save/load (docs/design.md, "Profiles" and "Data formats")."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
from PIL import Image
from small_model import SMALL_MODEL

from repro.errors import ReproError
from repro.model import (
    build_tiny_model,
    build_word_tokenizer,
    check_image_tokens,
    encode_prompts,
    image_token_count,
    load_model,
    resolve_dtype,
    save_model,
)

TEXTS = [
    (
        "USER: <image>\nWhat is the occupation of this person?\nA: doctor\nB: baker\nC: pilot\nD: judge\n"
        "Just give ONE letter representing the answer directly.\nASSISTANT: A</s>"
    ),
    "USER:\nWhere does Ada Lovelace live?\nASSISTANT: She lives in Paris.</s>",
]
CFG = SMALL_MODEL


def face(seed: int = 0) -> Image.Image:
    rng = random.Random(seed)
    return Image.frombytes("RGB", (32, 32), bytes(rng.randrange(256) for _ in range(32 * 32 * 3)))


@pytest.fixture(scope="module")
def tiny():
    tok = build_word_tokenizer(TEXTS)
    return build_tiny_model(CFG, tok, seed=0)


def test_tokenizer_deterministic_and_order_free():
    a, b = build_word_tokenizer(TEXTS), build_word_tokenizer(list(reversed(TEXTS)))
    assert a.get_vocab() == b.get_vocab()
    assert a(TEXTS[0])["input_ids"] == b(TEXTS[0])["input_ids"]
    for word in ("USER", "ASSISTANT", "A", "B", "C", "D", "?", ":", ".", "<image>", "</s>"):
        assert word in a.get_vocab(), word


def test_tokenizer_round_trip_and_special_tokens():
    tok = build_word_tokenizer(TEXTS)
    ids = tok("Where does Ada Lovelace live?")["input_ids"]
    assert ids[0] == tok.bos_token_id  # Llama-style <s> first
    assert tok.decode(ids, skip_special_tokens=True) == "Where does Ada Lovelace live ?"
    # "A:" splits into two tokens; the letter decodes on its own
    pieces = tok.convert_ids_to_tokens(tok("A: doctor", add_special_tokens=False)["input_ids"])
    assert pieces == ["A", ":", "doctor"]
    assert tok.decode([tok.convert_tokens_to_ids("A")]).strip()[0] == "A"
    # <image> and </s> are single added tokens, even when repeated without spaces
    image_id = tok.convert_tokens_to_ids("<image>")
    assert tok("<image><image>x</s>", add_special_tokens=False)["input_ids"][:2] == [image_id, image_id]
    assert tok("x</s>", add_special_tokens=False)["input_ids"][-1] == tok.eos_token_id
    assert tok("zebra", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]


def test_tiny_init_is_deterministic():
    tok = build_word_tokenizer(TEXTS)
    m1, _ = build_tiny_model(CFG, tok, seed=3)
    m2, _ = build_tiny_model(CFG, tok, seed=3)
    m3, _ = build_tiny_model(CFG, tok, seed=4)
    s1, s2, s3 = m1.state_dict(), m2.state_dict(), m3.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)


def test_forward_with_and_without_image(tiny):
    model, processor = tiny
    assert image_token_count(model, processor) == (32 // 8) ** 2 == check_image_tokens(model, processor)
    assert model.config.image_token_id == processor.tokenizer.convert_tokens_to_ids("<image>")
    batch = encode_prompts(
        processor,
        ["USER: <image>\nWho is this?\nASSISTANT:", "USER:\nWho is Ada?\nASSISTANT:"],
        [face(), None],
        CFG.max_length,
    )
    assert int((batch["input_ids"] == model.config.image_token_id).sum()) == 16
    assert batch["pixel_values"].shape == (1, 3, 32, 32)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[0] == 2 and logits.shape[-1] == len(processor.tokenizer)
    assert torch.isfinite(logits).all()
    # the image matters: another face changes the image row's prediction distribution
    other = encode_prompts(processor, ["USER: <image>\nWho is this?\nASSISTANT:"], [face(1)], CFG.max_length)
    with torch.no_grad():
        assert not torch.allclose(model(**other).logits[0, -1], logits[0, -1])


def test_left_padding_keeps_next_token_logits(tiny):
    """A left-padded row scores as it does alone: padding is masked, not attended."""
    model, processor = tiny
    short, long_ = (
        "USER:\nWho is Ada?\nASSISTANT:",
        "USER: <image>\nWhat is the occupation of this person?\nASSISTANT:",
    )
    both = encode_prompts(processor, [short, long_], [None, face()], CFG.max_length)
    alone = encode_prompts(processor, [short], [None], CFG.max_length)
    assert both["attention_mask"][0, 0] == 0  # left padded
    with torch.no_grad():
        torch.testing.assert_close(
            model(**both).logits[0, -1], model(**alone).logits[0, -1], rtol=1e-4, atol=1e-5
        )


def test_mismatched_processor_raises_before_forward(tiny, monkeypatch):
    model, _ = tiny
    tok = build_word_tokenizer(TEXTS)
    _, wrong = build_tiny_model(
        dataclasses.replace(CFG, patch_size=4), tok
    )  # 64 tokens per image, model wants 16
    calls = []
    monkeypatch.setattr(type(model), "forward", lambda *a, **k: calls.append(1))
    with pytest.raises(ReproError, match=r"64 .*16|16.*64") as err:
        check_image_tokens(model, wrong)
    assert "64" in str(err.value) and "16" in str(err.value)
    assert not calls


def test_save_load_round_trip_safetensors_only(tiny, tmp_path):
    model, processor = tiny
    out = tmp_path / "ckpt"
    save_model(model, processor, out)
    save_model(model, processor, out)  # overwriting an existing checkpoint works too
    names = sorted(p.name for p in out.iterdir())
    assert "model.safetensors" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp dirs left behind
    loaded, proc2 = load_model(str(out), "auto", "cpu")
    assert next(loaded.parameters()).dtype == torch.float32
    check_image_tokens(loaded, proc2)
    prompts, images = (
        ["USER: <image>\nWho is this?\nASSISTANT:", "USER:\nWho is Ada?\nASSISTANT:"],
        [face(), None],
    )
    b1 = encode_prompts(processor, prompts, images, CFG.max_length)
    b2 = encode_prompts(proc2, prompts, images, CFG.max_length)
    assert torch.equal(b1["input_ids"], b2["input_ids"]) and torch.equal(
        b1["pixel_values"], b2["pixel_values"]
    )
    with torch.no_grad():
        assert torch.equal(model(**b1).logits, loaded(**b2).logits)


def test_load_refuses_dir_without_safetensors(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ReproError, match="safetensors"):
        load_model(str(tmp_path), "auto", "cpu")


def test_resolve_dtype():
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    with pytest.raises(ReproError):
        resolve_dtype("float8", "cpu")
