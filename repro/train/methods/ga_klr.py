"""GA + KL on retain data: Yao, Xu & Liu, "Large language model unlearning" (NeurIPS 2024): gradient ascent
on the forget set plus KL(p_ref || p_theta) on the retain set's answer tokens."""

from torch import Tensor

from repro.train.losses import answer_token_kl
from repro.train.methods.base import Param, SequentialLoss, UnlearnStep, register, retain_batch
from repro.train.methods.ga import gradient_ascent


@register("ga_klr", needs_retain=True, needs_reference=True,
          params=[Param("kl_lambda", float, 1.0, "Yao et al. 2024: the KL term's weight, 1", positive=True)])
def ga_klr(step: UnlearnStep) -> SequentialLoss:
    retain = retain_batch(step)

    def kl() -> Tensor:
        # the reference forward runs first: disabling the adapter toggles requires_grad on its weights
        ref_logits = step.reference(retain).detach()
        return step.params["kl_lambda"] * answer_token_kl(ref_logits, step.policy(retain), retain["labels"])

    return SequentialLoss([lambda: gradient_ascent(step), kl])
