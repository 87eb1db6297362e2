"""Building and loading the model families, the tensors made from their prompts, and LoRA targets
(docs/design.md, "Profiles", "Model families" and "Fidelity decisions")."""

from repro.model.factory import (
    build_tiny_model,
    check_image_tokens,
    image_token_count,
    load_model,
    resolve_dtype,
    save_model,
)
from repro.model.lora import (
    LANGUAGE_MODEL_REGEX,
    attach_lora,
    lora_config,
    merge,
    trainable_parameter_names,
)
from repro.model.prompts import encode_prompts, encode_training_batch
from repro.model.tokenizer import build_word_tokenizer

__all__ = [
    "LANGUAGE_MODEL_REGEX",
    "attach_lora",
    "build_tiny_model",
    "build_word_tokenizer",
    "check_image_tokens",
    "encode_prompts",
    "encode_training_batch",
    "image_token_count",
    "load_model",
    "lora_config",
    "merge",
    "resolve_dtype",
    "save_model",
    "trainable_parameter_names",
]
