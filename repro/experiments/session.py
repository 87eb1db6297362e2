"""A session: one process's view of a run. Its data, the unit store, the model cache over the base model,
and the two units every experiment shares: the fine-tuned model (trained once) and predictions (computed
once per model and question set)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import torch

from repro import distributed
from repro.config import Profile
from repro.eval.items import Item, item_digest
from repro.eval.scoring import predict, prompt_limit
from repro.experiments import keys
from repro.experiments.base_model import load_base
from repro.experiments.data import RunData
from repro.experiments.disk import weight_bytes
from repro.experiments.models import ModelCache
from repro.experiments.store import UnitStore, default_units_dir
from repro.hashing import seed_from_key
from repro.model.factory import context_length
from repro.train.examples import knowledge_examples
from repro.train.recipes import encoder, finetune


class Session:
    def __init__(self, profile: Profile, run_dir: Path, data_dir: Path | None = None, units: Path | None = None):
        self.profile = profile
        self.run_dir = run_dir
        self.data = RunData(profile, data_dir)
        self.store = UnitStore(units or default_units_dir())
        dist = distributed.current()  # None when alone; under a launcher, this rank's device
        self.device = (dist.device if dist is not None
                       else torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        torch.manual_seed(profile.seed)

    @cached_property
    def base_key(self) -> str:
        return keys.base_key(self.profile, self.data.source_hash)

    @cached_property
    def _base(self) -> tuple[ModelCache, object]:
        model, processor = load_base(self.profile, self.data, self.base_key, self.device)
        models = ModelCache(model, self.store, self.profile.finetune)
        models.keep(self.base_key)
        return models, processor

    @property
    def models(self) -> ModelCache:
        return self._base[0]

    @property
    def processor(self):
        return self._base[1]

    @cached_property
    def encode(self):
        """Training examples -> a batch on this session's device."""
        return encoder(self.processor, self.profile.model.max_length, self.device)

    # ---- the fine-tuned model -----------------------------------------------------------------
    @cached_property
    def finetuned_key(self) -> str:
        return keys.finetuned_key(self.profile, self.base_key, self.data.fictional_splits["pool"],
                                  self.data.source_hash)

    def finetuned(self) -> str:
        """LoRA fine-tune of the base model on the fictional pool, merged (the "vanilla" model)."""
        key, models = self.finetuned_key, self.models
        if models.is_kept(key):
            return key
        unit = f"model-{key}.safetensors"
        model = models.model(self.base_key)
        if self.store.exists(unit):
            self.store.load_weights(unit, model)
            models.keep(key)
            return key
        self.store.require_free(weight_bytes(model), f"the fine-tuned model ({unit})")
        cfg = self.profile.finetune
        torch.manual_seed(seed_from_key(key))
        examples = knowledge_examples(self.data.split("pool"), cfg)
        models.live_unknown()  # training changes the live weights in place
        model = finetune(model, examples, cfg, self.profile.seed, self.encode,
                         self.profile.model.gradient_checkpointing)
        self.store.write_tensors(unit, model.state_dict())
        models.keep(key)
        return key

    # ---- predictions ----------------------------------------------------------------------------
    def evaluate(self, model_key: str, items: list[Item], desc: str = "eval",
                 rule: str = "first-letter") -> dict[str, str]:
        """Predictions of model `model_key` on `items` (answers read by `rule`), computed once and kept in
        the store under a key of everything they depend on: the prompts and images themselves, not only
        their ids."""
        e = self.profile.eval
        how = [e.scoring] if e.scoring != "letter" else [e.scoring, rule, e.generate_tokens]
        unit = f"eval-{keys.predictions_key(model_key, how, [item_digest(it) for it in items])}.json"
        kept = self.store.read_json(unit)
        if kept is not None:
            return kept
        model = self.models.model(model_key)
        preds = predict(model, self.processor, items, e.scoring, e.batch_size, prompt_limit(context_length(model), e),
                        desc, rule, e.generate_tokens)
        self.store.write_json(unit, preds)
        return preds
