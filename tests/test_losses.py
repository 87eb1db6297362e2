"""Unlearning losses, methods and the no-copy reference (docs/design.md, "Fidelity decisions"), on a tiny LLaVA with LoRA.
What every registered method must do is tests/test_method_contract.py."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from micro_llava import make_batch, perturb, tiny_llava, with_lora

from repro.config import UnlearnConfig
from repro.errors import ReproError
from repro.train.losses import answer_token_kl, answer_token_nll, npo_loss, sequence_logprob
from repro.train.methods import METHODS, UnlearnStep, get_method, register
from repro.train.reference import policy, reference


def step_for(model, forget, retain=None, **params) -> UnlearnStep:
    return UnlearnStep(
        forget=forget,
        retain=retain,
        policy=policy(model),
        reference=reference(model),
        cfg=UnlearnConfig(),
        params={"beta": 0.1, "kl_lambda": 1.0, **params},
    )


def flat_grad(model, loss) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])


# --- the fine-tuning loss and GA ---------------------------------------------------------------


def test_answer_nll_is_hf_loss_and_ga_is_its_negative():
    model = with_lora(tiny_llava())
    perturb(model, 0.3)
    model.eval()  # no LoRA dropout: the two forward passes must see the same model
    batch = make_batch(0)
    out = model(**batch)
    assert torch.allclose(answer_token_nll(out.logits, batch["labels"]), out.loss, atol=1e-6)
    ga = get_method("ga").loss(step_for(model, batch))
    assert torch.allclose(ga, -out.loss, atol=1e-6)


def test_sequence_logprob_sums_answer_tokens_in_float32():
    logits = torch.randn(3, 7, 11, dtype=torch.bfloat16)
    labels = torch.full((3, 7), -100)
    labels[0, 4:] = torch.tensor([1, 2, 3])
    labels[1, 6] = 5  # a one-token answer; row 2 has none -> 0
    got = sequence_logprob(logits, labels)
    logp = logits.float().log_softmax(-1)
    want = torch.tensor([logp[0, 3, 1] + logp[0, 4, 2] + logp[0, 5, 3], logp[1, 5, 5], 0.0])
    assert got.dtype == torch.float32
    assert torch.allclose(got, want, atol=1e-6)
    # the token mean of the same log-probs is minus the NLL
    assert torch.allclose(-got.sum() / 4, answer_token_nll(logits, labels), atol=1e-6)


def test_no_answer_tokens_is_an_error():
    with pytest.raises(ReproError, match="no answer tokens"):
        answer_token_nll(torch.randn(1, 4, 5), torch.full((1, 4), -100))


# --- the reference: the adapter disabled, projector included -----------------------------------


def test_disabled_adapter_restores_projector():
    base = tiny_llava()
    batch = make_batch(0)
    with torch.no_grad():
        base_logits = base(**batch).logits.clone()
    model = with_lora(base)
    # change only the projector's trainable copy: the policy moves, the reference must not
    perturb(model, 0.5, projector=True)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.zero_()
    model.train()
    model.base_model.model.model.vision_tower.eval()  # a frozen tower kept in eval stays so
    assert not torch.allclose(policy(model)(batch), base_logits, atol=1e-3)
    ref = reference(model)(batch)
    assert torch.allclose(ref, base_logits, atol=1e-6), "disable_adapter() left modules_to_save active"
    assert not ref.requires_grad
    # the context restores each module's mode and the adapter's requires_grad
    assert model.training and not model.base_model.model.model.vision_tower.training
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(("lora_" in n) or ("modules_to_save" in n) for n in trainable)
    assert any("modules_to_save" in n for n in trainable)


def test_reference_rejects_plain_models():
    with pytest.raises(ReproError, match="peft"):
        reference(tiny_llava())(make_batch(0))


# --- GA+KLR's KL term ---------------------------------------------------------------------------


def test_kl_zero_at_reference_and_positive_after_perturbing():
    model = with_lora(tiny_llava())  # fresh LoRA: B = 0, projector copy = original
    batch = make_batch(2)
    kl = answer_token_kl(reference(model)(batch), policy(model)(batch), batch["labels"])
    assert abs(kl.item()) < 1e-6
    perturb(model, 0.3)
    kl = answer_token_kl(reference(model)(batch), policy(model)(batch), batch["labels"])
    assert kl.item() > 1e-4


def test_kl_matches_torch_kl_div():
    ref, cur = torch.randn(2, 5, 9), torch.randn(2, 5, 9)
    labels = torch.full((2, 5), -100)
    labels[:, 2:] = 3
    want = (
        F.kl_div(cur[:, 1:4].log_softmax(-1), ref[:, 1:4].log_softmax(-1), log_target=True, reduction="sum")
        / 6
    )
    assert torch.allclose(answer_token_kl(ref, cur, labels), want, atol=1e-6)


# --- NPO ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_npo_at_start_of_request_is_2_log2_over_beta(beta):
    model = with_lora(tiny_llava())
    model.train()  # LoRA dropout on: still exact, since B = 0
    loss = get_method("npo").loss(step_for(model, make_batch(3), beta=beta))
    assert math.isclose(loss.item(), 2 / beta * math.log(2), rel_tol=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-1e4, 0), st.floats(-1e4, 0)), min_size=1, max_size=8),
    st.floats(1e-4, 10.0),
)
def test_npo_is_bounded_below_by_zero(pairs, beta):
    logp, ref = (torch.tensor(x, dtype=torch.float32) for x in zip(*pairs))
    assert npo_loss(logp, ref, beta).item() >= 0.0


def test_npo_gradient_tends_to_ga_as_beta_shrinks():
    model = with_lora(tiny_llava()).eval()  # eval: no dropout, every pass sees the same model
    batch = make_batch(4, n=6)
    # at the reference (fresh LoRA) every sequence has weight sigmoid(0): NPO's gradient is
    # GA's up to a scalar, for any beta (summing sequences sums all answer tokens)
    ga = flat_grad(model, get_method("ga").loss(step_for(model, batch)))
    npo = flat_grad(model, get_method("npo").loss(step_for(model, batch, beta=1.0)))
    assert F.cosine_similarity(ga, npo, dim=0).item() > 0.999

    perturb(model, 0.3, seed=2)  # far from it: per-sequence weights sigmoid(beta * ratio) differ
    ratio = sequence_logprob(policy(model)(batch), batch["labels"]) - sequence_logprob(
        reference(model)(batch), batch["labels"]
    )
    assert ratio.max() - ratio.min() > 1.0  # the sequences are weighted unequally at large beta
    ga = flat_grad(model, get_method("ga").loss(step_for(model, batch)))
    cos = []
    for beta in (10.0, 1.0, 0.1, 1e-4):
        npo = flat_grad(model, get_method("npo").loss(step_for(model, batch, beta=beta)))
        cos.append(F.cosine_similarity(ga, npo, dim=0).item())
    assert cos[0] < 0.99, cos  # the property is not trivial on this model
    assert all(a <= b + 1e-6 for a, b in itertools.pairwise(cos)), cos
    assert cos[-1] > 0.999, cos


# --- the registry -------------------------------------------------------------------------------


def test_unknown_method_lists_known_names():
    with pytest.raises(ReproError, match="known: .*ga_klr.*npo"):
        get_method("gradient_descent")


def test_registering_a_method_makes_it_available():
    try:

        @register("half_ga", needs_retain=True)
        def half_ga(step):
            return 0.5 * get_method("ga").loss(step)

        spec = get_method("half_ga")
        assert spec.loss is half_ga and spec.needs_retain and not spec.needs_reference
        model = with_lora(tiny_llava())
        batch = make_batch(7)
        step = step_for(model, batch, batch)
        assert torch.allclose(spec.loss(step), 0.5 * get_method("ga").loss(step))
        with pytest.raises(ReproError, match="already registered"):
            register("half_ga")(half_ga)
    finally:
        METHODS.remove("half_ga")


def test_builtin_methods_declare_what_they_need():
    assert {
        n: (s.needs_retain, s.needs_reference)
        for n, s in METHODS.items()
        if n in {"ga", "ga_klr", "npo", "gd", "simnpo", "kl_min"}
    } == {"ga": (False, False), "ga_klr": (True, True), "npo": (False, True), "gd": (True, False),
          "simnpo": (False, False), "kl_min": (True, True)}


def _grads(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad and p.grad is not None])


def test_ga_klr_terms_backpropagated_one_at_a_time_give_the_sums_gradient():
    model = with_lora(tiny_llava())
    perturb(model, 0.3)
    model.eval()  # no dropout: both computations must see the same model
    forget, retain = make_batch(7), make_batch(8)
    step = step_for(model, forget, retain, kl_lambda=0.5)
    loss = get_method("ga_klr").loss(step) / 2
    loss.backward()
    sequential = _grads(model)
    model.zero_grad(set_to_none=True)
    ref_logits = reference(model)(retain)
    eager = (-answer_token_nll(policy(model)(forget), forget["labels"])
             + 0.5 * answer_token_kl(ref_logits, policy(model)(retain), retain["labels"])) / 2
    eager.backward()
    assert torch.allclose(sequential, _grads(model), atol=1e-6)
    assert loss.item() == pytest.approx(eager.item(), abs=1e-6)


def test_sequential_loss_has_no_value_before_backward():
    model = with_lora(tiny_llava())
    loss = get_method("ga_klr").loss(step_for(model, make_batch(1), make_batch(2)))
    with pytest.raises(ReproError, match="only after backward"):
        loss.item()


def test_the_losses_refuse_bad_input_with_what_they_got():
    """Each refusal in full: the shapes that do not align, the beta, the missing answer tokens."""
    from repro.errors import ReproError
    from repro.train.losses import (
        answer_token_kl,
        answer_token_nll,
        every_position_kl,
        npo_loss,
        simnpo_loss,
    )

    logits, labels = torch.zeros(2, 4, 7), torch.full((2, 4), -100)
    cases = [
        (lambda: answer_token_nll(logits, labels[:, :3]), "logits (2, 4, 7) and labels (2, 3) do not align"),
        (lambda: answer_token_nll(logits, labels),
         "batch has no answer tokens (labels all -100): was the answer truncated by max_length?"),
        (lambda: answer_token_kl(logits[:1], logits, labels), "reference logits (1, 4, 7) and logits (2, 4, 7) differ"),
        (lambda: every_position_kl(logits, logits[:, :3]), "reference logits (2, 4, 7) and logits (2, 3, 7) differ"),
        (lambda: npo_loss(torch.zeros(2), torch.zeros(2), 0.0), "NPO needs beta > 0, got 0.0"),
        (lambda: simnpo_loss(logits, labels, 0.0, 0.0), "SimNPO needs beta > 0, got 0.0"),
        (lambda: simnpo_loss(logits, labels, 1.0, 0.0),
         "a sequence has no answer tokens (labels all -100): was its answer truncated by max_length?"),
    ]
    for call, message in cases:
        with pytest.raises(ReproError) as err:
            call()
        assert str(err.value) == message
