"""What every registered model family promises, held on its micro model (its architecture shrunk, random weights,
its real processor from `pulse-repro assets fetch`), the way tests/test_method_contract.py holds every method:

- the letter scorer's fast path answers as `generate` does, on every item;
- the image tokens the pre-flight counts are the ones the processor expands, and each face becomes the family's
  fixed number of image tokens;
- one LoRA step changes only the language model's adapter (and the projector copy under `proj+llm`), never
  the vision tower;
- the training labels cover exactly the answer and the end-of-answer token;
- a saved model loads back equal, its file in the hub's key layout;
- a prompt holds the question and its options to the character;
- asking for the answer positions' logits only (model.answer_logits) gives the same loss;
- the image-feature cache (repro/model/image_features.py) encodes every batch as the processor alone does.

Without a family's processor these tests skip, saying how to fetch it; with PULSE_REQUIRE_ASSETS set they fail.
"""

from __future__ import annotations

import os
import re

import pytest
import torch
from safetensors import safe_open

from repro.assets import asset_path
from repro.choices import load_profile
from repro.data.records import LETTERS
from repro.eval.scoring import _images, score_letter
from repro.experiments.base_model import processor_to_build
from repro.experiments.data import RunData
from repro.model.factory import build_model, check_image_tokens, image_token_count, load_model, save_model
from repro.model.families import FAMILIES, family_named
from repro.model.image_features import CachedImageProcessor
from repro.model.lora import attach_lora
from repro.model.prompts import (
    IGNORE,
    answer_logits_only,
    encode_prompts,
    encode_training_batch,
    token_counts,
)
from repro.train.examples import knowledge_examples
from repro.train.losses import answer_token_nll
from repro.train.reference import model_logits

NAMES = FAMILIES.names()


def _require_asset(profile) -> None:
    path = asset_path(profile.model.processor)
    if not (path / "tokenizer.json").is_file():
        message = f"no processor at {path} for {profile.name}: run `pulse-repro assets fetch` (needs npm)"
        if os.environ.get("PULSE_REQUIRE_ASSETS"):
            pytest.fail(message)
        pytest.skip(message)


class Micro:
    """A family's micro profile, its data, processor and a model with random weights."""

    def __init__(self, family: str):
        self.family = family_named(family)
        self.profile = load_profile(self.family.micro)
        _require_asset(self.profile)
        self.data = RunData(self.profile)
        self.processor = processor_to_build(self.profile, self.data)
        self.model, _ = build_model(self.profile.model, self.processor, seed=0)

    def items(self):
        """Both modalities of two fictional people and of a celebrity, and MMBench's questions."""
        people = self.data.split("pool")[:2] + self.data.celebrities[:1]
        return self.data.person_items(people) + self.data.mmbench_items()[:4]

    def one_shot_items(self):
        """A fictional person's questions with one answered demonstration before each (eval.shots = 1): a
        multimodal prompt shows the demonstration's face, then the asked one."""
        from repro.eval.demonstrations import draw_demonstrations
        from repro.eval.items import person_items

        pool = set(self.data.fictional_splits["pool"])
        outside = [p for p in self.data.fictional if p.key not in pool]
        return person_items(self.data.split("pool")[:1], self.data.dialect, draw_demonstrations(outside, 1, 0))

    def examples(self, n: int = 4):
        return knowledge_examples(self.data.split("pool")[:2], self.profile.finetune, self.data.dialect)[:n]


# Seconds a test on these (a face of 2,928 image tokens; a vocabulary of 262,208): the slow tier holds them.
HEAVY = {"llava-next", "gemma-3"}


@pytest.fixture(scope="module", params=[pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in NAMES])
def micro(request) -> Micro:
    return Micro(request.param)


def test_the_micro_profiles_name_their_own_family():
    for name in NAMES:
        assert load_profile(family_named(name).micro).model.family == name


def test_a_prompt_holds_the_question_and_its_options_to_the_character(micro):
    for it in micro.items():
        assert all(f"{k}: {v}\n" in it.prompt or f"{k}. {v}" in it.prompt for k, v in it.options.items())
        if it.person:
            person = next(p for p in micro.data.fictional + micro.data.celebrities if p.key == it.person)
            q = person.questions[int(it.uid.split("#")[1])]
            assert f"{q.question}\n" + "".join(f"{k}: {q.options[k]}\n" for k in LETTERS if k in q.options) in it.prompt
            assert q.question in it.context and q.question in it.prompt
        assert it.prompt.count(micro.family.dialect.image) == len(it.images() or ())


def test_the_image_tokens_counted_are_the_ones_the_processor_expands(micro):
    model, processor = micro.model, micro.processor
    per_face = check_image_tokens(model, processor)
    assert per_face == image_token_count(model, processor)
    items = micro.items() + micro.one_shot_items()
    assert max(len(it.images() or ()) for it in items) == 2
    counted = token_counts(processor, [it.prompt for it in items], per_face)
    for it, n in zip(items, counted):
        enc = encode_prompts(processor, [it.prompt], [_images(it)], 10 ** 6)
        assert n == enc["input_ids"].shape[1], it.uid
        faces = len(it.images() or ())
        assert int((enc["input_ids"] == model.config.image_token_id).sum()) == faces * per_face, it.uid


def test_the_image_feature_cache_encodes_every_batch_as_the_processor_alone(micro):
    """Mixed batches (faces, text-only rows, one-shot prompts with two faces, MMBench's images), each encoded
    twice by the cached processor (the second from the cache), equal the uncached processor's tensors."""
    import copy

    cached = micro.processor
    assert isinstance(cached.image_processor, CachedImageProcessor)
    plain = copy.copy(cached)
    plain.image_processor = cached.image_processor.wrapped
    items = micro.items() + micro.one_shot_items()
    batches = [items[i:i + 5] for i in range(0, len(items), 5)] + [items[::-3]]
    for _ in range(2):
        for batch in batches:
            args = ([it.prompt for it in batch], [_images(it) for it in batch], 10 ** 6)
            want, got = encode_prompts(plain, *args), encode_prompts(cached, *args)
            assert want.keys() == got.keys()
            for key in want:
                assert torch.equal(want[key], got[key]), key
    examples = micro.examples()
    train = [(e.prompt, e.answer, e.image) for e in examples]
    for key, value in encode_training_batch(plain, train, 10 ** 6).items():
        assert torch.equal(value, encode_training_batch(cached, train, 10 ** 6)[key]), key


def test_the_training_labels_cover_exactly_the_answer_and_its_end_token(micro):
    examples = micro.examples()
    batch = encode_training_batch(micro.processor, [(e.prompt, e.answer, e.image) for e in examples], 10 ** 6)
    tok = micro.processor.tokenizer
    end = micro.family.dialect.end
    for row, e in enumerate(examples):
        kept = batch["labels"][row][batch["labels"][row] != IGNORE].tolist()
        # what training ends an answer on is what generation stops on
        assert kept[-1] == tok.convert_tokens_to_ids(end) == micro.model.generation_config.eos_token_id
        assert tok.decode(kept).strip() == e.answer.strip()
        n = int(batch["attention_mask"][row].sum())
        assert kept == batch["input_ids"][row, n - len(kept):n].tolist()  # the row's last real tokens


@pytest.mark.parametrize("target", ["proj+llm", "llm"])
def test_one_lora_step_changes_the_language_models_adapter_and_the_projector_copy_only(micro, target):
    model, _ = build_model(micro.profile.model, micro.processor, seed=1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    peft_model = attach_lora(model, micro.profile.finetune, target)
    modules = micro.family.modules
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    projector_copy = [n for n in trainable if f".{modules.projector}.modules_to_save." in n]
    assert bool(projector_copy) == (target == "proj+llm")
    assert all("lora_" in n and f".{modules.language_model}." in n for n in trainable if n not in projector_copy)
    assert not [n for n in trainable if f".{modules.vision}." in n and f".{modules.projector}." not in n]
    examples = micro.examples(2)
    batch = encode_training_batch(micro.processor, [(e.prompt, e.answer, e.image) for e in examples], 10 ** 6)
    optimiser = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=1.0)
    peft_model.train()
    peft_model(**batch).loss.backward()
    optimiser.step()
    moved = {n for n, p in peft_model.named_parameters() if p.requires_grad and p.grad is not None
             and p.grad.abs().sum() > 0}
    assert moved and all("lora_" in n or n in projector_copy for n in moved)
    base = peft_model.get_base_model()
    for name, p in base.named_parameters():  # the frozen weights, the vision tower's among them, are as they were
        plain = re.sub(r"\.base_layer|\.original_module", "", name)
        if plain in before and "lora_" not in name and "modules_to_save" not in name:
            assert torch.equal(p, before[plain]), name


def test_answer_positions_only_give_the_same_loss(micro):
    examples = micro.examples()
    batch = encode_training_batch(micro.processor, [(e.prompt, e.answer, e.image) for e in examples], 10 ** 6)
    with torch.no_grad():
        full = answer_token_nll(model_logits(micro.model, batch), batch["labels"])
        kept = answer_logits_only(batch)
        part = answer_token_nll(model_logits(micro.model, kept), kept["labels"])
        own = micro.model(**batch).loss
    assert kept["labels"].shape[1] < batch["labels"].shape[1]
    assert part == pytest.approx(full.item(), rel=1e-5) and own == pytest.approx(full.item(), rel=1e-5)


def test_a_saved_model_loads_back_equal_in_the_hubs_key_layout(micro, tmp_path):
    out = save_model(micro.model, micro.processor, tmp_path / "saved")
    keys = set()
    for file in out.glob("*.safetensors"):
        with safe_open(str(file), "pt") as fh:
            keys |= set(fh.keys())
    prefixes = micro.family.modules.hub_prefixes
    assert keys and all(k.startswith(prefixes) for k in keys)
    assert all(any(k.startswith(p) for k in keys) for p in prefixes)  # every part of the layout is written
    loaded, processor = load_model(str(out), "float32", "cpu", micro.family.name)
    assert type(processor) is type(micro.processor)
    mine = micro.model.state_dict()
    theirs = loaded.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_the_unit_stores_weights_load_back_into_the_model(micro, tmp_path):
    """A fine-tuned unit is the model's state dict in the store (tied weights, as Gemma-3's, included)."""
    from safetensors.torch import load_file

    from repro.experiments.store import atomic_save_tensors

    atomic_save_tensors(tmp_path / "model.safetensors", micro.model.state_dict())
    other, _ = build_model(micro.profile.model, micro.processor, seed=5)
    other.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    mine = micro.model.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in other.state_dict().items())


def test_the_scorers_one_forward_pass_sees_what_generate_sees_first(micro):
    """The fast path reads the next-token logits of one left-padded forward pass; generate's first step must
    give the same logits for every row of a batch mixing lengths and faces (positions, masks, image tokens)."""
    items = micro.items()[:6]
    enc = encode_prompts(micro.processor, [it.prompt for it in items], [_images(it) for it in items], 10 ** 6)
    assert len({int(n) for n in enc["attention_mask"].sum(-1)}) > 1  # rows of several lengths: padding
    with torch.no_grad():
        fast = micro.model(**enc, logits_to_keep=1).logits[:, -1, :].float()
        generated = micro.model.generate(**{k: v for k, v in enc.items() if k != "position_ids"}, do_sample=False,
                                         max_new_tokens=1, output_logits=True, return_dict_in_generate=True,
                                         pad_token_id=micro.processor.tokenizer.pad_token_id)
    assert torch.allclose(fast, generated.logits[0].float(), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_the_letter_scorers_fast_path_answers_as_generate_does(micro):
    items = micro.items()
    for seed in (0, 3):
        model, _ = build_model(micro.profile.model, micro.processor, seed=seed)
        fast = score_letter(model, micro.processor, items, 4, 8000, "fast", new_tokens=4)
        slow = score_letter(model, micro.processor, items, 4, 8000, "generate", new_tokens=4)
        assert fast == slow


def test_the_command_lines_asset_and_shape_names_are_the_registries():
    """The CLI writes the names out (building its parser loads no model code): they must be the registered ones."""
    from repro import cli
    from repro.assets import ASSETS
    from repro.bench.shapes import shapes

    assert cli.ASSET_NAMES == ASSETS.names()
    assert cli.SHAPE_NAMES == tuple(sorted(shapes()))
    assert set(cli.SHAPE_NAMES) == {name for f in NAMES for name in family_named(f).shapes}
