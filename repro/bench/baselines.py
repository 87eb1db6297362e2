"""The MLLMU-Bench way of doing the kit's work, as the bench's baselines:
- scoring: one `generate` call per question at batch size 1, the answer decoded and parsed;
- the KL / NPO reference: a `copy.deepcopy` of the model kept next to the one being trained."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from repro.eval.items import Item
from repro.eval.scoring import GENERATE_TOKENS, score_letter
from repro.train.reference import model_logits

BASELINE_NOTE = (f"model.generate per question at batch size 1 (greedy, max_new_tokens="
                 f"{GENERATE_TOKENS}, stops at </s>), decoded and parsed with MLLMU-Bench's first-letter rule; "
                 f"MLLMU-Bench's own scripts generate longer answers, so this baseline is if anything faster")


def generate_per_question(model, processor, items: Sequence[Item], max_length: int) -> dict[str, str]:
    """Predicted letter per item uid, one generate call per question."""
    return score_letter(model, processor, items, 1, max_length, "generate", "bench baseline")


def deepcopy_reference(model: nn.Module) -> Callable[[dict], Tensor]:
    """batch -> logits of a frozen deep copy of `model` taken now (a second copy of every weight)."""
    frozen = copy.deepcopy(model).eval().requires_grad_(False)

    def logits(batch: dict) -> Tensor:
        with torch.no_grad():
            return model_logits(frozen, batch)

    return logits
