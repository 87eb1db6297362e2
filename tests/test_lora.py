"""LoRA targets: language model only, projector only for proj+llm, vision tower always frozen (docs/design.md, "LoRA and update targets")."""

from __future__ import annotations

import re

import pytest
import torch
from llava_text import training_text
from peft import LoraConfig, PeftModel, get_peft_model
from PIL import Image
from small_model import SMALL_MODEL

from repro.config import FinetuneConfig
from repro.errors import ReproError
from repro.model import (
    LANGUAGE_MODEL_REGEX,
    attach_lora,
    build_tiny_model,
    build_word_tokenizer,
    encode_prompts,
    encode_training_batch,
    lora_config,
    merge,
    trainable_parameter_names,
)
from repro.model.families.llava import Llava

CFG = SMALL_MODEL
FT = FinetuneConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0)
TEXTS = ["What is her job?", "She is a doctor.", "Where does Ada live?", "Paris"]
LORA_LM = re.compile(
    r"base_model\.model\.model\.language_model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.lora_[AB]\.default\.weight"
)
PROJ_COPY = re.compile(
    r"base_model\.model\.model\.multi_modal_projector\.modules_to_save\.default\.linear_[12]\.(weight|bias)"
)


def tiny():
    return build_tiny_model(CFG, build_word_tokenizer(TEXTS), seed=0)


def face(shade: int) -> Image.Image:
    return Image.new("RGB", (32, 32), (shade, 255 - shade, 40))


def batch(processor):
    items = [
        (*training_text("What is her job?", "She is a doctor.", True), face(30)),
        (*training_text("Where does Ada live?", "Paris", False), None),
    ]
    return encode_training_batch(processor, items, CFG.max_length)


def train_steps(model, processor, steps: int = 3) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    model.train()
    data = batch(processor)
    for _ in range(steps):
        opt.zero_grad()
        model(**data).loss.backward()
        opt.step()
    model.eval()


def test_default_regex_is_the_profile_default():
    assert LANGUAGE_MODEL_REGEX == FinetuneConfig().target_regex


def test_regex_hits_language_model_only_but_bare_list_hits_vision_tower():
    model, _ = tiny()
    names = [n for n, _ in model.named_modules()]
    vision = [n for n in names if "vision_tower" in n]
    lm_linear = [n for n in names if "language_model" in n and n.endswith("_proj")]
    assert vision and lm_linear
    assert not [n for n in vision if re.fullmatch(LANGUAGE_MODEL_REGEX, n)]
    assert all(re.fullmatch(LANGUAGE_MODEL_REGEX, n) for n in lm_linear)
    # why the regex matters: MLLMU-Bench's bare suffix list puts LoRA on CLIP's attention too
    bare = get_peft_model(tiny()[0], LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert [n for n in trainable_parameter_names(bare) if "vision_tower" in n]


def test_llm_target_trains_lora_in_language_model_only():
    model = attach_lora(tiny()[0], FT, "llm")
    names = trainable_parameter_names(model)
    assert names and all(LORA_LM.fullmatch(n) for n in names), [n for n in names if not LORA_LM.fullmatch(n)]
    # all seven linear kinds, both layers, A and B
    assert len(names) == CFG.text_layers * 7 * 2
    assert not [n for n in names if "vision_tower" in n or "projector" in n]


def test_proj_llm_target_adds_the_projector():
    model = attach_lora(tiny()[0], FT, "proj+llm")
    names = trainable_parameter_names(model)
    lora = [n for n in names if LORA_LM.fullmatch(n)]
    proj = [n for n in names if PROJ_COPY.fullmatch(n)]
    assert len(lora) == CFG.text_layers * 7 * 2 and len(proj) == 4
    assert sorted(lora + proj) == names
    assert not [n for n in names if "vision_tower" in n]


def test_unknown_target_rejected():
    with pytest.raises(ReproError, match="update target"):
        lora_config(FT, "vision", Llava.modules)


def test_attach_lora_refuses_a_target_that_reaches_the_vision_tower():
    with pytest.raises(ReproError, match="vision tower"):
        attach_lora(tiny()[0], FinetuneConfig(target_regex=r".*\.(q_proj|v_proj)"), "llm")


def test_vision_tower_bit_identical_after_training():
    model, processor = tiny()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "vision_tower" in n}
    proj_before = model.model.multi_modal_projector.linear_1.weight.detach().clone()
    peft_model = attach_lora(model, FT, "proj+llm")
    train_steps(peft_model, processor)
    after = {
        n.removeprefix("base_model.model."): p
        for n, p in peft_model.named_parameters()
        if "vision_tower" in n
    }
    assert before.keys() == after.keys()
    assert all(torch.equal(before[n], after[n]) for n in before)
    # ...while the projector (trained copy) and LoRA weights did move, so the check is not vacuous
    merged = merge(peft_model)
    assert not torch.equal(merged.model.multi_modal_projector.linear_1.weight, proj_before)
    assert all(torch.equal(before[n], p) for n, p in merged.named_parameters() if n in before)


def test_saved_adapter_loads_back_to_identical_logits(tmp_path):
    model, processor = tiny()
    peft_model = attach_lora(model, FT, "proj+llm")
    train_steps(peft_model, processor)
    prompts = ["USER: <image>\nWhat is her job?\nASSISTANT:", "USER:\nWhere does Ada live?\nASSISTANT:"]
    inputs = encode_prompts(processor, prompts, [face(30), None], CFG.max_length)
    with torch.no_grad():
        want = peft_model(**inputs).logits
        with peft_model.disable_adapter():
            base = peft_model(**inputs).logits
    assert not torch.allclose(want, base)  # the adapter changed the model
    peft_model.save_pretrained(tmp_path / "adapter")
    saved = sorted(p.name for p in (tmp_path / "adapter").iterdir())
    assert "adapter_model.safetensors" in saved and not [n for n in saved if n.endswith((".bin", ".pt"))]

    reloaded = PeftModel.from_pretrained(tiny()[0], str(tmp_path / "adapter"))  # a fresh base, the same seed
    with torch.no_grad():
        assert torch.equal(reloaded(**inputs).logits, want)
    # merging gives the same function (up to rounding) as the adapter
    with torch.no_grad():
        torch.testing.assert_close(merge(reloaded)(**inputs).logits, want, rtol=1e-4, atol=1e-4)


def _grads(checkpointing: bool, target: str) -> tuple[float, dict[str, torch.Tensor]]:
    """The loss and every trainable parameter's gradient after one backward pass on one mixed batch; the
    LoRA B matrices start non-zero, so that every LoRA matrix gets a gradient."""
    model, processor = tiny()
    peft_model = attach_lora(model, FT, target, checkpointing=checkpointing)
    torch.manual_seed(0)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    peft_model.train()
    loss = peft_model(**batch(processor)).loss
    loss.backward()
    return loss.item(), {n: p.grad for n, p in peft_model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("target", ["proj+llm", "llm"])
def test_checkpointing_trains_every_lora_layer_and_the_projector_copy(target):
    """A frozen base under activation checkpointing is a known way to train nothing: every LoRA matrix (and
    the projector copy under proj+llm) must get a non-zero gradient, as without checkpointing."""
    _, grads = _grads(True, target)
    assert any(LORA_LM.fullmatch(n) for n in grads)
    assert (target == "proj+llm") == any(PROJ_COPY.fullmatch(n) for n in grads)
    dead = [n for n, g in grads.items() if g is None or not g.abs().sum() > 0]
    assert not dead, f"no gradient under checkpointing: {dead[:3]}"


def test_checkpointing_gives_the_unchecked_loss_and_gradients():
    loss, grads = _grads(False, "proj+llm")
    loss_ckpt, grads_ckpt = _grads(True, "proj+llm")
    assert loss_ckpt == pytest.approx(loss, rel=1e-6)
    assert grads.keys() == grads_ckpt.keys()
    for name in grads:
        torch.testing.assert_close(grads_ckpt[name], grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_checkpointing_is_really_on_and_off():
    model, _ = tiny()
    attach_lora(model, FT, "llm", checkpointing=True)
    assert model.is_activation_checkpointing
    model2, _ = tiny()
    model2.activation_checkpointing_enable()
    attach_lora(model2, FT, "llm", checkpointing=False)
    assert not model2.is_activation_checkpointing
