"""What every registered unlearning method must do, whatever its loss (the registry is iterated, so a new
method file is tested by being added): a finite loss whose gradients reach the LoRA matrices (and the
projector copy under `proj+llm`) and nothing else; a few steps on its own schedule make the forget answers
less likely; the reference's logits stay the model's at the start of the request."""

from __future__ import annotations

import math
import re

import pytest
import torch
from micro_llava import make_batch, perturb, tiny_llava

from repro.config import FinetuneConfig, UnlearnConfig
from repro.model.lora import attach_lora
from repro.train.loop import Example
from repro.train.losses import sequence_logprob
from repro.train.methods import METHODS, UnlearnStep, get_method
from repro.train.reference import policy, reference

LORA = FinetuneConfig(lora_r=4, lora_alpha=4, lora_dropout=0.05)
TARGETS = ("proj+llm", "llm")
# What may train, named from the model's own layout rather than from the kit's target table.
LORA_MATRIX = re.compile(r".*\.language_model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.lora_[AB]\.default\.weight")
PROJECTOR_COPY = re.compile(r".*\.multi_modal_projector\.modules_to_save\.default\.linear_[12]\.(weight|bias)")
LAYERS, PROJECTIONS = 2, 7  # tiny_llava: 2 decoder layers, q k v o gate up down in each


def defaults(spec) -> dict:
    return {p.name: p.default for p in spec.params}


def scheduled_pairs(spec, forget: dict, retain: dict, epochs: int = 5) -> list[tuple]:
    """The (forget, retain) batch pairs `spec`'s own schedule gives over one forget and one retain batch."""
    forget_ex = [Example("forget", "", None)] * len(forget["input_ids"])
    retain_ex = [Example("retain", "", None)] * len(retain["input_ids"])
    plan = spec.schedule(forget_ex, retain_ex, UnlearnConfig(epochs=epochs, batch_size=len(forget_ex)), 0,
                         spec.needs_retain)

    def tensors(part):
        return None if part is None else forget if part[0].prompt == "forget" else retain

    return [tuple(tensors(part) for part in pair) for pair in plan.batches]


def step_kinds(spec, forget: dict, retain: dict) -> list[tuple]:
    """One pair of each kind the schedule gives (forget and retain, forget only, retain only)."""
    kinds = {}
    for f, r in scheduled_pairs(spec, forget, retain, epochs=1):
        kinds.setdefault((f is None, r is None), (f, r))
    return list(kinds.values())


def train_a_few_steps(model, spec, ref, forget: dict, retain: dict) -> None:
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    pairs = scheduled_pairs(spec, forget, retain)
    assert any(f is forget for f, _ in pairs), "the schedule never shows the forget batch"
    for f, r in pairs:
        loss = spec.loss(UnlearnStep(f, r, policy(model), ref, UnlearnConfig(), defaults(spec)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", METHODS.names())
def test_the_loss_is_finite_and_its_gradients_reach_the_adapter_only(name, target):
    spec = get_method(name)
    model = attach_lora(tiny_llava(), LORA, target)
    perturb(model, 0.3)  # LoRA B away from zero, so that A's gradients are not zero by construction
    model.train()
    torch.manual_seed(0)
    params = dict(model.named_parameters())
    adapter = {n for n in params if LORA_MATRIX.fullmatch(n) or (target == "proj+llm" and PROJECTOR_COPY.fullmatch(n))}
    assert len(adapter) == LAYERS * PROJECTIONS * 2 + (4 if target == "proj+llm" else 0)
    for f, r in step_kinds(spec, make_batch(5), make_batch(6)):
        model.zero_grad(set_to_none=True)
        loss = spec.loss(UnlearnStep(f, r, policy(model), reference(model), UnlearnConfig(), defaults(spec)))
        loss.backward()
        assert math.isfinite(loss.item()), (name, loss.item())
        reached = {n for n, p in params.items() if p.grad is not None and p.grad.abs().sum() > 0}
        kind = "forget" if r is None else "retain" if f is None else "forget+retain"
        assert reached == adapter, (f"{name} {target}, {kind} step: gradients outside the adapter "
                                    f"{sorted(reached - adapter)[:3]}, adapter parameters without one "
                                    f"{sorted(adapter - reached)[:3]}")


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", METHODS.names())
def test_a_few_steps_lower_the_forget_answers_likelihood(name, target):
    """On the method's own schedule, from a fresh adapter (the start of a request)."""
    spec = get_method(name)
    model = attach_lora(tiny_llava(), LORA, target)
    forget, retain = make_batch(5), make_batch(6)
    with torch.no_grad():
        before = sequence_logprob(policy(model.eval())(forget), forget["labels"])
    torch.manual_seed(0)
    train_a_few_steps(model, spec, reference(model), forget, retain)
    with torch.no_grad():
        after = sequence_logprob(policy(model)(forget), forget["labels"])
    assert (after < before).all() and after.mean() < before.mean() - 1.0, (before, after)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", METHODS.names())
def test_the_reference_logits_do_not_move_while_the_policy_trains(name, target):
    spec = get_method(name)
    base = tiny_llava()
    forget, retain = make_batch(5), make_batch(6)
    with torch.no_grad():  # the model at the start of the request, before any adapter exists
        start = {k: base(**{x: v for x, v in b.items() if x != "labels"}).logits.clone()
                 for k, b in (("forget", forget), ("retain", retain))}
    model = attach_lora(base, LORA, target)
    ref = reference(model)  # built once, as a request builds it, and called across the training
    torch.manual_seed(0)
    train_a_few_steps(model, spec, ref, forget, retain)
    for k, b in (("forget", forget), ("retain", retain)):
        with torch.no_grad():
            moved = (policy(model)(b) - start[k]).abs().max().item()
        assert moved > 1e-2, f"the policy did not train ({moved}): the check below would be empty"
        assert torch.allclose(ref(b), start[k], atol=1e-5), f"{name} {target}: the reference moved on {k}"
