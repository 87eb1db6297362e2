"""`RUN_DIR/units.jsonl`: what every unit a run made or found was made from, so that a reviewer can check
the protocol from the run directory alone (which people each request forgot and retained, from which model,
with which method parameters and seeds), and `pulse-repro status` can tell what is left.

One record per unit and run, the first time the run makes or finds it (append-only, like results.jsonl):
- kind: "base", "finetuned", "request" or "predictions"; key: the unit's key (a results record's `model` is
  the key of a base, fine-tuned or request unit);
- start: the model it started from (a request: the previous request's model or the chain's first);
- people: the person ids trained on (fine-tuned), forgotten and retained (request: forget, retain), or
  scored (predictions: scored, with `items`);
- seed (the profile's), torch_seed (drawn from the key before training: LoRA initialisation and dropout),
  lora_init (a digest of the adapter's weights before the first step);
- examples, steps (optimiser steps), wall_s, device, dtype; made: true when this run made it, false when it
  was found in the unit store (then the training fields are absent: they belong to the run that made it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from repro import distributed
from repro.jsonl import AppendLog, read_jsonl

UNITS_FILE = "units.jsonl"
KINDS = ("base", "finetuned", "request", "predictions")


def read_units(run_dir: Path) -> list[dict]:
    return [u for u in read_jsonl(run_dir / UNITS_FILE) if u.get("kind") in KINDS and "key" in u]


class UnitLog:
    """The run's units.jsonl, written by rank 0 only."""

    def __init__(self, run_dir: Path):
        self.log = AppendLog(run_dir / UNITS_FILE, lambda u: (u["kind"], u["key"])) if distributed.is_main() else None

    def record(self, unit: dict) -> None:
        self.extend([unit])

    def extend(self, units: list[dict]) -> None:
        if self.log is not None:
            self.log.append(units)


def model_facts(model) -> dict:
    """Where and in what precision `model` ran."""
    param = next(model.parameters())
    return {"device": str(param.device), "dtype": str(param.dtype).removeprefix("torch.")}


def lora_digest(peft_model) -> str:
    """A digest of the trainable weights (the LoRA matrices, the projector copy) as they are before the first
    step: two runs whose adapters started alike have the same one."""
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if param.requires_grad:
                digest.update(name.encode())
                digest.update(param.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
