"""LoRA targets (docs/design.md, "LoRA and update targets"): the language model's linear layers, chosen by a regex.

A bare suffix list such as ["q_proj", "v_proj"] also matches the attention of the vision tower (MLLMU-Bench's
code has that bug); the profile's regex names the language model, so it cannot. The vision tower is never
trainable; `proj+llm` also trains the family's projector. Which modules those are is the model family's
(repro/model/families/, `Modules`).
"""

from __future__ import annotations

from peft import LoraConfig, PeftModel, get_peft_model

from repro.config import FinetuneConfig
from repro.errors import ReproError
from repro.model.families import family_of_model
from repro.model.families.base import Modules
from repro.registry import Registry

LANGUAGE_MODEL_REGEX = FinetuneConfig.target_regex  # the profile default, one source of truth

# Update targets (paper Table B): whether the projector trains besides the language model's LoRA (as a fully
# trained copy, peft's modules_to_save).
TARGETS: Registry[bool] = Registry("update target")
TARGETS.add("llm", False)  # LoRA on the language model only
TARGETS.add("proj+llm", True)  # plus a fully trained copy of the projector (the paper's setting)


def lora_config(cfg: FinetuneConfig, target: str, modules: Modules) -> LoraConfig:
    """`llm`: LoRA on the language model only; `proj+llm`: plus a fully trained projector copy."""
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        # A string is matched with re.fullmatch against every module name (a list would be suffixes).
        target_modules=cfg.target_regex,
        modules_to_save=[modules.projector] if TARGETS.get(target) else None,
        bias="none",
    )


def trainable_parameter_names(model) -> list[str]:
    return sorted(n for n, p in model.named_parameters() if p.requires_grad)


def attach_lora(model, cfg: FinetuneConfig, target: str, checkpointing: bool = False) -> PeftModel:
    """Wrap `model` (modified in place) with a fresh LoRA adapter; fails if the vision tower could train or
    LoRA reached beyond the language model. With `checkpointing`, activations are recomputed in the backward
    pass (model.gradient_checkpointing)."""
    modules = family_of_model(model).modules
    config = lora_config(cfg, target, modules)  # an unknown target fails before the model is touched
    model.requires_grad_(False)  # peft freezes the base too; be explicit, the vision tower must stay frozen
    if checkpointing:
        # Non-reentrant: gradients reach the adapter's weights although no input of a checkpointed layer
        # requires grad (the reentrant kind trains nothing on a frozen base without enable_input_require_grads).
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    elif model.is_activation_checkpointing:
        model.activation_checkpointing_disable()
    peft_model = get_peft_model(model, config)
    _check_frozen_vision(peft_model, modules)
    return peft_model


def merge(peft_model: PeftModel):
    """Fold the adapter (and the trained projector copy) into the base weights; returns the base model."""
    return peft_model.merge_and_unload()


def _check_frozen_vision(model, modules: Modules) -> None:
    def part(name: str, module: str) -> bool:
        return f".{module}." in f".{name}"

    trainable = trainable_parameter_names(model)
    leaked = [n for n in trainable if part(n, modules.vision) and not part(n, modules.projector)]
    if leaked:
        raise ReproError(f"LoRA target would train the vision tower: {leaked[0]} (and {len(leaked) - 1} more)")
    stray = [n for n in trainable if "lora_" in n and not part(n, modules.language_model)]
    if stray:
        raise ReproError(f"LoRA target reaches beyond the language model: {stray[0]} (and {len(stray) - 1} more)")
