"""Gradient ascent: Jang et al. 2023, "Knowledge unlearning for mitigating privacy risks in language
models": the fine-tuning loss on the forget set, maximised."""

from torch import Tensor

from repro.train.losses import answer_token_nll
from repro.train.methods.base import UnlearnStep, forget_batch, register


def gradient_ascent(step: UnlearnStep) -> Tensor:
    forget = forget_batch(step)
    return -answer_token_nll(step.policy(forget), forget["labels"])


register("ga")(gradient_ascent)
