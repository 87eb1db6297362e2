"""SimNPO: Fan, Liu, Lin, Jia, Zhang, Mei & Liu, "Simplicity prevails: rethinking negative preference
optimization for LLM unlearning" (2024), eq. 4: NPO without a reference model, on the answer's
length-normalised log-likelihood, with a margin gamma:

    loss = -(2 / beta) * mean over forget sequences of log sigmoid(-(beta / |y|) * log p_theta(y | x) - gamma)
"""

from torch import Tensor

from repro.train.losses import simnpo_loss
from repro.train.methods.base import Param, UnlearnStep, forget_batch, register


@register("simnpo", params=[
    Param("beta", float, 2.5, "kit choice: Fan et al. tune beta per benchmark", positive=True),
    Param("gamma", float, 0.0, "kit choice: no margin, the loss is then NPO's with the reference dropped"),
])
def simnpo(step: UnlearnStep) -> Tensor:
    forget = forget_batch(step)
    return simnpo_loss(step.policy(forget), forget["labels"], step.params["beta"], step.params["gamma"])
