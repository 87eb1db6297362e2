"""Policy and reference logits of a LoRA model, with no second copy of the weights.

The reference (DESIGN.md section 4) is the same PeftModel with its adapter disabled. peft's
`disable_adapter()` also routes every `modules_to_save` wrapper (the multi-modal projector under
`proj+llm`) to its original module, so the whole reference is the base weights
(checked in tests/test_losses.py::test_disabled_adapter_restores_projector).

What the base weights are is the caller's contract, set by `UnlearnConfig.reference`:
- "request":  merge the previous request's adapter into the base and attach a fresh one at the
  start of each request, so the disabled-adapter model is the model at the start of this request;
- "original": train the chain's one adapter on across requests, over the chain's first model (merged
  only for evaluation), so the disabled-adapter model stays the pre-unlearning model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from peft import PeftModel
from torch import Tensor, nn

from repro.errors import ReproError

REFERENCE_MODES = ("request", "original")


def model_logits(model: nn.Module, batch: dict) -> Tensor:
    """Logits of `model` on `batch`. Labels are dropped so that HF does not compute its own loss
    (a float32 copy of all B x T x V logits we do not need)."""
    return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def policy(model: nn.Module) -> Callable[[dict], Tensor]:
    """batch -> logits under the model being trained (with grad)."""
    return lambda batch: model_logits(model, batch)


def reference_logits(model: nn.Module, batch: dict, mode: str = "request") -> Tensor:
    """Logits of the reference model: `model` with its adapter disabled, in eval mode, without grad.

    Eval mode because the reference is a fixed target: dropout noise would make it random.
    Each module's own mode is restored after (a frozen vision tower may be kept in eval on purpose).
    """
    if mode not in REFERENCE_MODES:
        raise ReproError(f"unknown reference mode {mode!r} (known: {', '.join(REFERENCE_MODES)})")
    if not isinstance(model, PeftModel):
        raise ReproError(
            "the reference needs a peft model (the adapter disabled gives the reference weights); "
            f"got {type(model).__name__}"
        )
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad(), model.disable_adapter():
            return model_logits(model, batch)
    finally:
        for module, training in modes:
            module.training = training


def reference(model: nn.Module, mode: str = "request") -> Callable[[dict], Tensor]:
    """batch -> reference logits; cheap to build, runs only when a method asks for it."""
    return lambda batch: reference_logits(model, batch, mode)
