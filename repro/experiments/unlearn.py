"""One unlearning request as a unit: a fresh LoRA adapter over the start model, trained on the forget
people with a registered method (repro/train/recipes.py, unlearn), kept as an adapter unit and merged, so
that chained requests compose (docs/design.md, "Units").

`unlearn.reference` says what the KL / NPO reference of a chained request is:
- "request": the model at the start of the request (the adapter disabled);
- "original": the chain's first model (the model before any unlearning), whose logits are taken once
  before the request trains (repro/train/reference.py, FrozenReference)."""

from __future__ import annotations

import time

import torch

from repro.data.records import Person
from repro.experiments.disk import weight_bytes
from repro.experiments.keys import request_key
from repro.experiments.models import Adapter, adapter_unit
from repro.experiments.provenance import lora_digest, model_facts
from repro.hashing import seed_from_key
from repro.model.lora import merge
from repro.train.examples import knowledge_examples
from repro.train.methods import get_method, method_params
from repro.train.recipes import Request, frozen_reference, unlearn


def unlearn_request(session, start_key: str, forget: list[Person], retain: list[Person], method: str,
                    target: str) -> tuple[str, list[float]]:
    """Unlearn `forget` from model `start_key`; returns the new model's key and the step losses (none when
    the unit was made before, by this run or another sharing the store). The run's units.jsonl records what
    the request was made from."""
    p = session.profile
    spec = get_method(method)
    params = method_params(p.unlearn, spec)
    key = request_key(p, start_key, spec, target, [x.key for x in forget], [x.key for x in retain])
    record = {"kind": "request", "key": key, "start": start_key, "method": method, "params": params,
              "target": target, "reference": p.unlearn.reference if spec.needs_reference else None,
              "forget": [x.key for x in forget], "retain": [x.key for x in retain],
              "retain_used": spec.needs_retain, "seed": p.seed, "torch_seed": seed_from_key(key)}
    if session.models.has(key):
        session.units.record({**record, "made": False})
        return key, []
    # The same data a person was fine-tuned on (MLLMU-Bench unlearns on the forget set's training QA).
    dialect = session.data.dialect
    request = Request(spec, params, target, knowledge_examples(forget, p.finetune, dialect),
                      knowledge_examples(retain, p.finetune, dialect), p.seed)
    t0 = time.perf_counter()
    losses, facts = train_request(session, key, start_key, request)
    session.units.record({**record, "made": True, **facts, "steps": len(losses),
                          "examples": {"forget": len(request.forget), "retain": len(request.retain)},
                          "wall_s": round(time.perf_counter() - t0, 1)})
    return key, losses


def train_request(session, key: str, start_key: str, request: Request) -> tuple[list[float], dict]:
    """Train the request's adapter over model `start_key`, keep it as unit `key` and merge it: the step
    losses, and what the unit record says of the training (the chain's first model, the adapter's first
    weights, the device)."""
    p, models = session.profile, session.models
    previous = models.adapter(start_key)
    root = previous.root if previous is not None else start_key  # the chain's first model
    frozen = None
    if p.unlearn.reference == "original" and root != start_key and request.method.needs_reference:
        frozen = frozen_reference(models.model(root), request, p.unlearn, session.encode)
    torch.manual_seed(seed_from_key(key))
    model = models.model(start_key)
    models.live_unknown()  # training changes the live weights in place
    facts: dict = {"root": root}

    def before_training(peft_model) -> None:
        facts["lora_init"] = lora_digest(peft_model)
        session.store.require_free(weight_bytes(peft_model, trainable_only=True),
                                   f"the request's adapter ({adapter_unit(key)})")

    peft_model, losses = unlearn(model, request, p.unlearn, p.finetune, session.encode, frozen,
                                 p.model.gradient_checkpointing, before_training)
    models.keep_adapter(key, Adapter(start_key, request.target, root), peft_model)
    merge(peft_model).eval()
    models.live_is(key)
    return losses, {**facts, **model_facts(peft_model)}
