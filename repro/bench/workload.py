"""What one bench run measures: the profile's people and questions from its data, and its base model
(the cached pre-trained one for `tiny`), or a `--shape` model with random weights."""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field

import torch

from repro.config import Profile
from repro.data.records import Person
from repro.eval.items import Item
from repro.experiments.base_model import load_base
from repro.experiments.data import RunData
from repro.experiments.keys import base_key
from repro.experiments.store import base_model_path
from repro.model.factory import check_image_tokens, load_model
from repro.train.recipes import encoder


@dataclass
class Workload:
    profile: Profile
    data: RunData
    device: torch.device
    pool: list[Person]  # the fictional people fine-tuning learns
    unlearn: list[Person]  # D_unlearn
    retain: list[Person]  # D_retain
    items: list[Item]  # the evaluation sample
    shape: str | None = None
    model: object = None
    processor: object = None
    state: dict | None = field(default=None, repr=False)  # CPU copy of the weights, to undo training

    def encode(self, batch) -> dict:
        """A training batch as a run encodes it."""
        m = self.profile.model
        return encoder(self.processor, m.max_length, self.device, m.answer_logits)(batch)

    def restore(self) -> None:
        """Back to the loaded weights after a training stage (a --shape model's random weights are
        not kept: its throughput does not depend on them)."""
        if self.state is not None:
            self.model.load_state_dict(self.state)
        self.model.eval()


def prepare(profile: Profile, n_items: int, shape: str | None = None) -> Workload:
    """The data: people of the fictional splits, and `n_items` questions (people and MMBench) sampled
    with the profile's seed."""
    data = RunData(profile)  # the bench writes no units
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pool = data.split("pool")
    items = data.person_items(pool) + data.mmbench_items()  # as a run asks them (eval.shots included)
    items = random.Random(profile.seed).sample(items, min(n_items, len(items))) if n_items else []
    return Workload(profile, data, device, pool, data.split("unlearn"), data.split("retain"), items, shape)


def load(w: Workload, keep_state: bool = True) -> Workload:
    """Load the model once. `tiny`: the cached pre-trained base, built (and pre-trained, unless
    pretrain.steps=0) by the session when it is not cached yet."""
    p = w.profile
    if w.shape is not None:
        from repro.bench.shapes import build_shaped_model, paper_shape
        from repro.experiments.base_model import processor_to_build

        own = processor_to_build(p, w.data) if paper_shape(w.shape).micro else None
        w.model, w.processor = build_shaped_model(p.model, w.data.all_texts(), w.shape, p.seed, w.device, own)
    else:
        source = p.model.source
        if source == "tiny":
            key = base_key(p, w.data.source_hash)
            cached = base_model_path(key)
            if not cached.exists():
                if p.pretrain.steps:
                    print(f"pulse-repro bench: no cached base model; pre-training it ({p.pretrain.steps} steps, "
                          f"minutes; --set pretrain.steps=0 skips it)", file=sys.stderr)
                load_base(p, w.data, key, w.device)  # builds, pre-trains and caches the base
            source = str(cached)
        w.model, w.processor = load_model(source, p.model.dtype, w.device, p.model.family)
        check_image_tokens(w.model, w.processor)
    if keep_state and w.shape is None:
        w.state = {k: v.detach().to("cpu", copy=True) for k, v in w.model.state_dict().items()}
    w.model.eval()
    return w
