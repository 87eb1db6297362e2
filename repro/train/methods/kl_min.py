"""KL minimisation, as MLLMU-Bench's baseline code does it (baselines/KL_Min.py): each epoch a
gradient-ascent pass over the forget set, then a pass over the retain set minimising the fine-tuning loss
plus KL(p_vanilla || p_theta) summed over every position and the vocabulary and divided by the batch size
(`F.kl_div(..., reduction="batchmean")`). p_vanilla is the reference: the model at the start of the request."""

from torch import Tensor

from repro.train.losses import answer_token_nll, every_position_kl
from repro.train.methods.base import Param, UnlearnStep, register
from repro.train.methods.ga import gradient_ascent
from repro.train.methods.schedules import forget_pass_then_retain_pass


@register("kl_min", needs_retain=True, needs_reference=True, schedule=forget_pass_then_retain_pass,
          reference_everywhere=True,
          params=[Param("kl_weight", float, 1.0, "MLLMU-Bench KL_Min.py: NLL + KL, unweighted", positive=True)])
def kl_min(step: UnlearnStep) -> Tensor:
    if step.forget is not None:  # the forget pass
        return gradient_ascent(step)
    retain = step.retain
    ref_logits = step.reference(retain).detach()  # before the policy's forward (see ga_klr.py)
    logits = step.policy(retain)
    kl = every_position_kl(ref_logits, logits)
    return answer_token_nll(logits, retain["labels"]) + step.params["kl_weight"] * kl
