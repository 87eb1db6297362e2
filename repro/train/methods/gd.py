"""Gradient difference: Liu et al. 2022 (CoLLAs), the "Grad. Diff." baseline of TOFU (Maini et al. 2024):
gradient ascent on the forget set plus the fine-tuning loss on the retain set. Not a PULSE method."""

from torch import Tensor

from repro.train.losses import answer_token_nll
from repro.train.methods.base import UnlearnStep, register, retain_batch
from repro.train.methods.ga import gradient_ascent


@register("gd", needs_retain=True)
def gradient_difference(step: UnlearnStep) -> Tensor:
    retain = retain_batch(step)
    return gradient_ascent(step) + answer_token_nll(step.policy(retain), retain["labels"])
