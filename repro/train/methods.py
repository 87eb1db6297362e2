"""Unlearning methods: a registry of loss functions, one small function per method.

Adding a method (its PULSE scores then sit next to GA, GA+KLR and NPO):

    @register("my_method", needs_retain=True)
    def my_method(step: UnlearnStep) -> Tensor:
        return -answer_token_nll(step.policy(step.forget), step.forget["labels"]) + ...

and list its name in the profile's `unlearn.methods`. The function returns the scalar loss to
minimise for one optimisation step (or a `SequentialLoss` of terms, back-propagated one at a time to
save memory); `needs_retain` / `needs_reference` tell the trainer whether to
draw a retain batch and whether the method reads the reference model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor

from repro.config import UnlearnConfig
from repro.errors import ReproError
from repro.train.losses import answer_token_kl, answer_token_nll, npo_loss, sequence_logprob


@dataclass
class UnlearnStep:
    """What a method sees at one optimisation step."""

    forget: dict  # a batch from D_unlearn (input_ids, attention_mask, labels, maybe pixel_values)
    retain: dict | None  # a batch from D_retain, or None for methods that do not need one
    policy: Callable[[dict], Tensor]  # logits under the model being trained (with grad)
    reference: Callable[[dict], Tensor]  # logits under the reference model (no grad)
    cfg: UnlearnConfig


def step_inputs(encode: Callable[[list], dict], paired: bool) -> Callable[[object], tuple[dict, dict | None]]:
    """batch -> UnlearnStep's (forget, retain) tensors. A batch is a (forget, retain) pair of example lists
    when `paired` (methods that need D_retain), else forget examples alone."""

    def encoded(batch) -> tuple[dict, dict | None]:
        forget, retain = batch if paired else (batch, None)
        return encode(forget), encode(retain) if retain is not None else None

    return encoded


class SequentialLoss:
    """A sum of loss terms back-propagated one at a time: each term's graph is freed before the next
    term's forward runs, so the peak memory is the largest term's, not the sum of them (GA+KLR: the
    forget graph, then the retain graph with the reference logits). The gradient is the sum's.
    It stands in for a scalar loss where the trainer uses one: `* c`, `/ c`, `backward()`, then `item()`."""

    def __init__(self, terms: Sequence[Callable[[], Tensor]], scale: float = 1.0):
        self.terms, self.scale, self._value = tuple(terms), scale, None

    def __mul__(self, c: float) -> SequentialLoss:
        return SequentialLoss(self.terms, self.scale * float(c))

    __rmul__ = __mul__

    def __truediv__(self, c: float) -> SequentialLoss:
        return SequentialLoss(self.terms, self.scale / float(c))

    def backward(self) -> None:
        total = 0.0
        for term in self.terms:
            value = term() * self.scale
            value.backward()
            total += value.item()
        self._value = total

    def item(self) -> float:
        if self._value is None:
            raise ReproError("a SequentialLoss has a value only after backward()")
        return self._value


@dataclass(frozen=True)
class MethodSpec:
    fn: Callable[[UnlearnStep], Tensor]
    needs_retain: bool = False
    needs_reference: bool = False


METHODS: dict[str, MethodSpec] = {}


def register(name: str, *, needs_retain: bool = False, needs_reference: bool = False):
    """Decorator: make `fn(step) -> loss` available as method `name`."""

    def wrap(fn: Callable[[UnlearnStep], Tensor]) -> Callable[[UnlearnStep], Tensor]:
        if name in METHODS:
            raise ReproError(f"unlearning method {name!r} is already registered")
        METHODS[name] = MethodSpec(fn, needs_retain=needs_retain, needs_reference=needs_reference)
        return fn

    return wrap


def get_method(name: str) -> MethodSpec:
    try:
        return METHODS[name]
    except KeyError:
        raise ReproError(
            f"unknown unlearning method {name!r} (known: {', '.join(sorted(METHODS))})"
        ) from None


def _retain(step: UnlearnStep) -> dict:
    if step.retain is None:
        raise ReproError("this method needs a retain batch, got none")
    return step.retain


def _ga(step: UnlearnStep) -> Tensor:
    return -answer_token_nll(step.policy(step.forget), step.forget["labels"])


# Gradient ascent: Jang et al. 2023 ("Knowledge unlearning for mitigating privacy risks in LMs").
@register("ga")
def ga(step: UnlearnStep) -> Tensor:
    return _ga(step)


# GA + KL on retain data: Yao, Xu & Liu, "Large language model unlearning" (NeurIPS 2024).
@register("ga_klr", needs_retain=True, needs_reference=True)
def ga_klr(step: UnlearnStep) -> SequentialLoss:
    retain = _retain(step)

    def kl() -> Tensor:
        # the reference forward runs first: disabling the adapter toggles requires_grad on its weights
        ref_logits = step.reference(retain).detach()
        return step.cfg.kl_lambda * answer_token_kl(ref_logits, step.policy(retain), retain["labels"])

    return SequentialLoss([lambda: _ga(step), kl])


# NPO: Zhang, Lin, Bai & Mei, "Negative preference optimization" (COLM 2024), eq. 3.
@register("npo", needs_reference=True)
def npo(step: UnlearnStep) -> Tensor:
    labels = step.forget["labels"]
    ref_logp = sequence_logprob(step.reference(step.forget).detach(), labels)
    logp = sequence_logprob(step.policy(step.forget), labels)
    return npo_loss(logp, ref_logp, step.cfg.beta)


# Gradient difference: Liu et al. 2022 (CoLLAs), as the "Grad. Diff." baseline of TOFU (Maini et al. 2024).
# Not a PULSE method: the worked example of adding one.
@register("gd", needs_retain=True)
def gd(step: UnlearnStep) -> Tensor:
    retain = _retain(step)
    return _ga(step) + answer_token_nll(step.policy(retain), retain["labels"])
