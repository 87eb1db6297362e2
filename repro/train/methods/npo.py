"""NPO: Zhang, Lin, Bai & Mei, "Negative preference optimization" (COLM 2024), eq. 3, on the forget set."""

from torch import Tensor

from repro.train.losses import npo_loss, sequence_logprob
from repro.train.methods.base import Param, UnlearnStep, forget_batch, register


@register("npo", needs_reference=True,
          params=[Param("beta", float, 0.1, "Zhang et al. 2024: beta = 0.1 in their TOFU runs", positive=True)])
def npo(step: UnlearnStep) -> Tensor:
    forget = forget_batch(step)
    labels = forget["labels"]
    ref_logp = sequence_logprob(step.reference(forget).detach(), labels)
    logp = sequence_logprob(step.policy(forget), labels)
    return npo_loss(logp, ref_logp, step.params["beta"])
