"""A session: one process's view of a run. Its data, the unit store, the model cache over the base model,
and the two units every experiment shares: the fine-tuned model (trained once) and predictions (computed
once per model and question set)."""

from __future__ import annotations

import time
from functools import cached_property
from pathlib import Path

import torch

from repro import distributed
from repro.config import Profile
from repro.eval.answering import LETTERS, Answering
from repro.eval.batch_size import resolve_batch_size
from repro.eval.items import Item, item_digest
from repro.experiments import keys
from repro.experiments.base_model import load_base
from repro.experiments.data import RunData
from repro.experiments.disk import weight_bytes
from repro.experiments.models import ModelCache
from repro.experiments.provenance import UnitLog, lora_digest, model_facts
from repro.experiments.store import UnitStore, base_model_path, default_units_dir
from repro.hashing import seed_from_key
from repro.train.examples import knowledge_examples
from repro.train.recipes import encoder, finetune


class Session:
    def __init__(self, profile: Profile, run_dir: Path, data_dir: Path | None = None, units: Path | None = None):
        self.profile = profile
        self.run_dir = run_dir
        self.data = RunData(profile, data_dir)
        self.store = UnitStore(units or default_units_dir())
        self.units = UnitLog(run_dir)  # units.jsonl: what each unit this run made or found was made from
        dist = distributed.current()  # None when alone; under a launcher, this rank's device
        self.device = (dist.device if dist is not None
                       else torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        torch.manual_seed(profile.seed)

    @cached_property
    def base_key(self) -> str:
        return keys.base_key(self.profile, self.data.source_hash)

    @cached_property
    def _base(self) -> tuple[ModelCache, object]:
        p = self.profile
        built = p.model.source == "tiny" and not base_model_path(self.base_key).exists()
        t0 = time.perf_counter()
        model, processor = load_base(p, self.data, self.base_key, self.device)
        unit = {"kind": "base", "key": self.base_key, "start": p.model.source, "seed": p.base_seed, "made": built,
                "wall_s": round(time.perf_counter() - t0, 1), **model_facts(model)}
        if built:
            unit.update(torch_seed=seed_from_key(self.base_key), steps=p.pretrain.steps,
                        people=sorted(x.key for x in self.data.celebrities))
        self.units.record(unit)
        models = ModelCache(model, self.store, p.finetune)
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
        return encoder(self.processor, self.profile.model.max_length, self.device, self.profile.model.answer_logits)

    # ---- the fine-tuned model -----------------------------------------------------------------
    @cached_property
    def finetuned_key(self) -> str:
        return keys.finetuned_key(self.profile, self.base_key, self.data.fictional_splits["pool"],
                                  self.data.source_hash)

    def finetuned(self) -> str:
        """LoRA fine-tune of the base model on the fictional pool, merged (the "vanilla" model)."""
        key, cfg = self.finetuned_key, self.profile.finetune
        people = self.data.split("pool")
        record = {"kind": "finetuned", "key": key, "start": self.base_key, "target": cfg.target,
                  "people": sorted(x.key for x in people), "seed": self.profile.seed, "torch_seed": seed_from_key(key)}
        if self.models.is_kept(key):  # this process has it (its record is written)
            return key
        t0 = time.perf_counter()
        made = self.train_finetuned(key, knowledge_examples(people, cfg, self.data.dialect))
        self.units.record({**record, **made, "wall_s": round(time.perf_counter() - t0, 1)})
        return key

    def train_finetuned(self, key: str, examples) -> dict:
        """The fine-tuned model `key` loaded from the store, or trained on `examples` and kept there; what the
        unit record says of it (made or found; when made, its adapter's first weights, examples and steps)."""
        models, cfg = self.models, self.profile.finetune
        unit = f"model-{key}.safetensors"
        model = models.model(self.base_key)
        if self.store.exists(unit):
            self.store.load_weights(unit, model)
            models.keep(key)
            return {"made": False, **model_facts(model)}
        self.store.require_free(weight_bytes(model), f"the fine-tuned model ({unit})")
        torch.manual_seed(seed_from_key(key))
        models.live_unknown()  # training changes the live weights in place
        facts: dict = {"made": True, "examples": len(examples)}
        model, losses = finetune(model, examples, cfg, self.profile.seed, self.encode,
                                 self.profile.model.gradient_checkpointing,
                                 lambda peft_model: facts.update(lora_init=lora_digest(peft_model)))
        self.store.write_tensors(unit, model.state_dict())
        models.keep(key)
        return {**facts, "steps": len(losses), **model_facts(model)}

    # ---- predictions ----------------------------------------------------------------------------
    def evaluate(self, model_key: str, items: list[Item], desc: str = "eval",
                 answering: Answering = LETTERS) -> dict[str, str]:
        """Predictions of model `model_key` on `items`, got as `answering` says (letters under eval.scoring by
        default, or answers in words). Computed once and kept in the store under a key of everything they
        depend on: the prompts and images themselves (the demonstrations' among them), not only their ids."""
        e = self.profile.eval
        how = answering.how(e)
        unit = f"eval-{keys.predictions_key(model_key, how, [item_digest(it) for it in items])}.json"
        record = {"kind": "predictions", "key": unit.removeprefix("eval-").removesuffix(".json"), "start": model_key,
                  "scored": sorted({it.person for it in items if it.person}), "items": len(items), "scoring": how}
        t0 = time.perf_counter()
        kept = self.store.read_json(unit)
        if kept is not None:
            self.units.record({**record, "made": False})
            return kept
        model = self.models.model(model_key)
        batch = resolve_batch_size(e.batch_size, model, self.processor, answering.texts(items, e),
                                   answering.new_tokens(e))
        preds = answering.answer(model, self.processor, items, batch, e, desc)
        self.store.write_json(unit, preds)
        self.units.record({**record, "made": True, "batch_size": batch, "wall_s": round(time.perf_counter() - t0, 1),
                           **model_facts(model)})
        return preds
