"""Policy and reference logits of a LoRA model, with no second copy of the weights.

The reference (docs/design.md, "The reference model") is the same PeftModel with its adapter disabled. Disabling the
adapter layers as peft's `disable_adapter()` does also routes every `modules_to_save` wrapper (the
multi-modal projector under `proj+llm`) to its original module, so the whole reference is the base weights
(checked in tests/test_losses.py::test_disabled_adapter_restores_projector).

What the base weights are is the caller's contract, set by `UnlearnConfig.reference`:
- "request":  merge the previous request's adapter into the base and attach a fresh one at the
  start of each request, so the disabled-adapter model is the model at the start of this request;
- "original": each request still trains a fresh adapter over the previous request's merged model, but
  its reference is the chain's first model, whose weights are no longer under the adapter: its logits
  are taken once before the request trains (`FrozenReference`).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable

import torch
from peft import PeftModel
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import AuxiliaryTrainingWrapper
from torch import Tensor, nn

from repro.errors import ReproError
from repro.model.prompts import IGNORE

REFERENCE_MODES = ("request", "original")


def model_logits(model: nn.Module, batch: dict) -> Tensor:
    """Logits of `model` on `batch`. Labels are dropped so that HF does not compute its own loss
    (a float32 copy of all B x T x V logits we do not need)."""
    return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def policy(model: nn.Module) -> Callable[[dict], Tensor]:
    """batch -> logits under the model being trained (with grad)."""
    return lambda batch: model_logits(model, batch)


def reference(model: nn.Module) -> Callable[[dict], Tensor]:
    """batch -> logits of `model` with its adapter disabled, in eval mode, without grad; the model's
    modules and adapter layers are found once, here, and every call reuses them.

    Eval mode because the reference is a fixed target: dropout noise would make it random. Each module's
    own mode is restored after (a frozen vision tower may be kept in eval on purpose). The adapter is
    disabled layer by layer, as peft's `disable_adapter()` does (the same `enable_adapters` call on the same
    layers), but on layers found once: that context walks the whole model and checks every layer's status
    on each call, which at 13B (3,600 modules) costs tens of milliseconds a call, several per cent of an
    NPO step."""
    if not isinstance(model, PeftModel):
        raise ReproError(
            "the reference needs a peft model (the adapter disabled gives the reference weights); "
            f"got {type(model).__name__}"
        )
    modules = list(model.modules())
    adapters = [m for m in modules if isinstance(m, (BaseTunerLayer, AuxiliaryTrainingWrapper))]

    def set_modes(flags) -> None:
        # what Module.train() sets, without nn.Module.__setattr__'s parameter/buffer/module checks
        # (thousands of modules per call)
        for module, flag in zip(modules, flags):
            object.__setattr__(module, "training", flag)

    def logits(batch: dict) -> Tensor:
        training = [m.training for m in modules]
        set_modes(itertools.repeat(False))
        for layer in adapters:
            layer.enable_adapters(False)
        try:
            with torch.no_grad():
                return model_logits(model, batch)
        finally:
            for layer in adapters:
                layer.enable_adapters(True)
            set_modes(training)

    return logits


def _row_key(batch: dict, row: int) -> bytes:
    """An example's identity within any batch: its tokens (padding dropped) and its image's pixels."""
    digest = hashlib.sha256()
    ids = batch["input_ids"][row][batch["attention_mask"][row].bool()]
    digest.update(ids.detach().cpu().numpy().tobytes())
    if "pixel_values" in batch:
        digest.update(batch["pixel_values"][row].detach().float().cpu().numpy().tobytes())
    return digest.digest()


def _answer_logit_positions(labels: Tensor, row: int) -> Tensor:
    """Positions t whose logits predict an answer token (labels[t + 1] is not ignored), as the losses
    select them (repro/train/losses.py, _answer_positions)."""
    return (labels[row, 1:] != IGNORE).nonzero().squeeze(-1)


class FrozenReference:
    """Reference logits taken once, before training, from a model whose weights are then replaced
    (`unlearn.reference = "original"` in a chain: the chain's first model). Kept per example at its answer
    positions only (answer tokens x vocabulary, on the CPU), found again by the example's tokens and image
    whatever batch it comes in, and laid out at the batch's answer positions with zeros elsewhere: the
    losses read answer positions only (repro/train/losses.py)."""

    def __init__(self, model: nn.Module, batches: Iterable[dict]):
        self._rows: dict[bytes, Tensor] = {}
        modes = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            with torch.no_grad():
                for batch in batches:
                    logits = model_logits(model, batch)
                    for row in range(logits.shape[0]):
                        at = _answer_logit_positions(batch["labels"], row)
                        self._rows[_row_key(batch, row)] = logits[row, at].to("cpu")
        finally:
            for module, training in modes:
                module.training = training

    def __call__(self, batch: dict) -> Tensor:
        rows = []
        for row in range(batch["input_ids"].shape[0]):
            kept = self._rows.get(_row_key(batch, row))
            if kept is None:
                raise ReproError("the frozen reference has no logits for an example of this batch")
            rows.append(kept)
        B, T = batch["labels"].shape  # the kept positions, when the batch keeps the answer positions only
        out = torch.zeros(B, T, rows[0].shape[-1], dtype=rows[0].dtype, device=batch["input_ids"].device)
        for row, kept in enumerate(rows):
            out[row, _answer_logit_positions(batch["labels"], row)] = kept.to(out.device)
        return out
