"""The base model of a run: the hub model the profile names, or the tiny model built from config and
pre-trained here, cached under its key in this numeric environment (repro/experiments/store.py)."""

from __future__ import annotations

import torch

from repro import distributed
from repro.assets import require_asset
from repro.config import Profile
from repro.experiments.data import RunData
from repro.experiments.disk import require_free, weight_bytes
from repro.experiments.store import base_model_path
from repro.hashing import seed_from_key
from repro.model.factory import (
    build_model,
    check_image_tokens,
    load_model,
    load_processor,
    save_model,
    tiny_processor,
)
from repro.model.tokenizer import build_word_tokenizer
from repro.train.recipes import encoder, pretrain


def processor_to_build(profile: Profile, data: RunData):
    """The processor a model built from config reads with: the profile's processor directory (of its model
    family), or the kit's word-level tokenizer over everything the model will read, with CLIP at
    model.image_size."""
    m = profile.model
    return (load_processor(require_asset(m.processor), m.family) if m.processor
            else tiny_processor(m, build_word_tokenizer(data.all_texts())))


def load_base(profile: Profile, data: RunData, key: str, device: torch.device):
    """(model, processor) of the base model `key`, on `device`."""
    p = profile
    if p.model.source != "tiny":
        model, processor = load_model(p.model.source, p.model.dtype, device, p.model.family)
    else:
        cached = base_model_path(key)
        if distributed.rank0_decides(cached.exists()):  # under a launcher: a cache shared by the ranks
            model, processor = load_model(str(cached), p.model.dtype, device, p.model.family)
        else:
            torch.manual_seed(seed_from_key(key))
            model, processor = build_model(p.model, processor_to_build(p, data), p.base_seed)
            model.to(device)
            check_image_tokens(model, processor)
            if distributed.is_main():
                require_free(cached.parent, weight_bytes(model), "the pre-trained tiny base model")
            if p.pretrain.steps:
                pretrain(model, data.celebrities, data.mmbench_train, p.pretrain, p.base_seed,
                         encoder(processor, p.model.max_length, device, p.model.answer_logits),
                         data.dialect)
            if distributed.is_main():
                save_model(model, processor, cached)
    check_image_tokens(model, processor)
    return model, processor
