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


# ---- the registry's own contract ---------------------------------------------------------------------------


def test_register_records_what_a_method_declares_and_nothing_it_does_not():
    from repro.train.methods import Method, Param, register
    from repro.train.methods.schedules import forget_pass_then_retain_pass, forget_steps

    def loss(step):
        return torch.zeros(())

    beta = Param("beta", float, 0.5, "a test")
    try:
        assert register("probe-plain")(loss) is loss
        assert get_method("probe-plain") == Method("probe-plain", loss, False, False, (), forget_steps, False)
        register("probe-full", needs_retain=True, needs_reference=True, params=[beta],
                 schedule=forget_pass_then_retain_pass, reference_everywhere=True)(loss)
        assert get_method("probe-full") == Method("probe-full", loss, True, True, (beta,),
                                                  forget_pass_then_retain_pass, True)
    finally:
        for name in ("probe-plain", "probe-full"):
            if name in METHODS:
                METHODS.remove(name)


def test_a_parameter_declared_positive_refuses_zero_and_an_unknown_one_names_the_known():
    from repro.errors import ConfigError
    from repro.train.methods import Param

    beta = Param("beta", float, 0.1, "a test", positive=True)
    assert beta.check(1, "where") == 1.0 and isinstance(beta.check(1, "where"), float)
    with pytest.raises(ConfigError, match=r"^unlearn\.npo\.beta: must be > 0, got 0\.0$"):
        beta.check(0.0, "unlearn.npo.beta")
    from repro.train.methods import method_params

    with pytest.raises(ConfigError) as err:  # a profile's value is checked under its own key
        method_params(UnlearnConfig(params={"npo": {"beta": 0}}), get_method("npo"))
    assert str(err.value) == "unlearn.npo.beta: must be > 0, got 0.0"
    with pytest.raises(ConfigError) as err:
        get_method("ga").param("beta")
    assert str(err.value) == "unlearn.ga.beta: ga has no parameter 'beta' (its parameters: none)"
    with pytest.raises(ConfigError) as err:
        get_method("simnpo").param("delta")
    assert str(err.value) == "unlearn.simnpo.delta: simnpo has no parameter 'delta' (its parameters: beta, gamma)"


def test_a_method_given_no_batch_it_needs_says_which():
    from repro.errors import ReproError
    from repro.train.methods.base import forget_batch, retain_batch

    step = UnlearnStep(None, None, lambda b: b, lambda b: b, UnlearnConfig())
    with pytest.raises(ReproError) as err:
        forget_batch(step)
    assert str(err.value) == "this method needs a forget batch, got none"
    with pytest.raises(ReproError) as err:
        retain_batch(step)
    assert str(err.value) == "this method needs a retain batch, got none"


def test_a_sequential_loss_scales_like_the_sum_of_its_terms():
    """(t1 + t2) * 3 / 2, back-propagated term by term: the gradient and the value of the scaled sum."""
    from repro.errors import ReproError
    from repro.train.methods import SequentialLoss

    w = torch.tensor([1.0, 2.0], requires_grad=True)
    loss = SequentialLoss([lambda: (w ** 2).sum(), lambda: w.sum()])
    scaled = 3 * loss / 2
    with pytest.raises(ReproError, match="^a SequentialLoss has a value only after backward\\(\\)$"):
        scaled.item()
    scaled.backward()
    assert scaled.item() == pytest.approx(1.5 * (5.0 + 3.0))
    assert torch.allclose(w.grad, 1.5 * (2 * torch.tensor([1.0, 2.0]) + 1))
    assert (loss * 2).scale == 2.0 and loss.scale == 1.0  # scaling makes a new loss


def test_a_frozen_reference_tells_examples_apart_by_their_image_as_well_as_their_tokens():
    """Two people asked the same question are two examples: the frozen reference keys a row by its tokens
    (padding dropped) and its image."""
    from repro.train.reference import _row_key

    ids = torch.tensor([[0, 5, 6, 7], [5, 6, 7, 8], [0, 5, 6, 7]])
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1]])
    pixels = torch.stack([torch.zeros(3, 2, 2), torch.zeros(3, 2, 2), torch.ones(3, 2, 2)])
    batch = {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels}
    keys = [_row_key(batch, row) for row in range(3)]
    assert keys[0] != keys[2]  # the same question, another face
    assert keys[0] != keys[1]  # another question
    moved = {"input_ids": ids[[2, 0]], "attention_mask": mask[[2, 0]], "pixel_values": pixels[[2, 0]]}
    assert [_row_key(moved, row) for row in range(2)] == [keys[2], keys[0]]  # wherever the row sits
    text = {"input_ids": ids, "attention_mask": mask}
    assert _row_key(text, 0) == _row_key(text, 2)  # no image: the tokens alone


def test_taking_reference_logits_leaves_every_modules_mode_as_it_was():
    """The references switch the model to eval while they read it and back after: the policy trains on in
    train mode (LoRA dropout on), and a module kept in eval on purpose stays so."""
    from repro.errors import ReproError
    from repro.train.reference import FrozenReference

    model = attach_lora(tiny_llava(), LORA, "proj+llm")
    model.train()
    next(iter(model.modules())).training = False  # one module kept in eval
    modes = [m.training for m in model.modules()]
    frozen = FrozenReference(model, [make_batch(5)])
    assert [m.training for m in model.modules()] == modes
    reference(model)(make_batch(5))
    assert [m.training for m in model.modules()] == modes
    with pytest.raises(ReproError) as err:
        frozen(make_batch(6))
    assert str(err.value) == "the frozen reference has no logits for an example of this batch"
    with pytest.raises(ReproError) as err:
        reference(tiny_llava())
    assert str(err.value) == ("the reference needs a peft model (the adapter disabled gives the reference weights); "
                              "got LlavaForConditionalGeneration")
