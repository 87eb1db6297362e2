"""Which weights are live. One copy of the model per process; every model of a run is named by its key and
made live on demand: the base and fine-tuned models from kept weights, an unlearned model by rebuilding its
parent and merging its adapter unit (units/adapter-KEY.safetensors) into it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft import PeftModel, get_peft_model_state_dict, set_peft_model_state_dict

from repro.config import FinetuneConfig
from repro.errors import ReproError
from repro.experiments.store import UnitStore
from repro.model.lora import attach_lora, merge

ADAPTER_METADATA = {"parent", "target", "root"}


@dataclass(frozen=True)
class Adapter:
    """An unlearned model: a LoRA adapter over its parent model."""

    parent: str  # the key of the model the adapter is applied to
    target: str  # the update target it was trained with ("llm" or "proj+llm")
    root: str  # the first model of its chain of requests (the reference under reference="original")


def adapter_unit(key: str) -> str:
    return f"adapter-{key}.safetensors"


class ModelCache:
    def __init__(self, model, store: UnitStore, lora: FinetuneConfig):
        self._model = model
        self.store, self.lora = store, lora
        self._states: dict[str, dict[str, torch.Tensor]] = {}  # base and fine-tuned: key -> CPU weights
        self._adapters: dict[str, Adapter] = {}  # unlearned models: kept as adapters (MBs), on disk
        self._live: str | None = None

    @property
    def device(self) -> torch.device:
        return next(self._model.parameters()).device

    def keep(self, key: str) -> None:
        """The live weights are model `key`'s: keep a CPU copy (base and fine-tuned models)."""
        self._states[key] = {k: v.detach().cpu().clone() for k, v in self._model.state_dict().items()}
        self._live = key

    def is_kept(self, key: str) -> bool:
        return key in self._states

    def model(self, key: str):
        """The live model holding the weights of `key`."""
        if self._live == key:
            return self._model
        if key in self._states:
            self._model.load_state_dict(self._states[key])
        elif self.has(key):
            # Attaching an adapter draws its initial weights from the RNG before the unit's replace them:
            # rebuilding a model leaves the RNG as it was, so a request seeded before its start model is
            # rebuilt (after a resume) trains as in an uninterrupted run.
            devices = [self.device] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                merge(self._attach(key)).eval()
        else:
            raise ReproError(f"model {key} is not known to this run (no kept weights, no unit {adapter_unit(key)})")
        self._live = key
        return self._model

    def live_is(self, key: str) -> None:
        """The live weights were changed in place into model `key`'s (a merged adapter)."""
        self._live = key

    def live_unknown(self) -> None:
        """The live weights are no model's (an interrupted request): the next `model()` reloads."""
        self._live = None

    # ---- unlearned models: adapters over a parent -------------------------------------------
    def adapter(self, key: str) -> Adapter | None:
        """What unlearned model `key` is made of, or None for the base and fine-tuned models."""
        return self._adapters.get(key) if self.has(key) else None

    def has(self, key: str) -> bool:
        """Whether `key` can be made live without training: weights kept, or its adapter unit written (by
        this run, another run sharing the store, or an interrupted one)."""
        if key in self._states or key in self._adapters:
            return True
        meta = self.store.metadata(adapter_unit(key), ADAPTER_METADATA)
        if meta is None:
            return False
        self._adapters[key] = Adapter(meta["parent"], meta["target"], meta["root"])
        return True

    def keep_adapter(self, key: str, spec: Adapter, peft_model: PeftModel) -> None:
        """Write `key`'s adapter as a unit and remember what it is made of."""
        self.store.write_tensors(adapter_unit(key), get_peft_model_state_dict(peft_model),
                                 {"parent": spec.parent, "target": spec.target, "root": spec.root})
        self._adapters[key] = spec

    def _attach(self, key: str) -> PeftModel:
        """The parent of `key` live, with `key`'s adapter attached."""
        spec = self._adapters[key]
        peft_model = attach_lora(self.model(spec.parent), self.lora, spec.target)
        weights = self.store.read_tensors(adapter_unit(key))
        result = set_peft_model_state_dict(peft_model, weights)
        if result.unexpected_keys:
            raise ReproError(f"{self.store.path(adapter_unit(key))}: weights that fit no adapter module: "
                             f"{result.unexpected_keys[:3]}")
        return peft_model
