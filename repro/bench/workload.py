"""What one bench run measures: the profile's people and questions from its data, and its base model
(the cached pre-trained one for `tiny`), or a `--shape` model with random weights."""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field

import torch

from repro.config import Profile
from repro.data.records import Person
from repro.eval.items import Item, person_items
from repro.experiments.session import Session, base_model_path, cache_dir
from repro.model.factory import check_image_tokens, load_model
from repro.model.prompts import encode_training_batch


@dataclass
class Workload:
    profile: Profile
    session: Session
    pool: list[Person]  # the fictional people fine-tuning learns
    unlearn: list[Person]  # D_unlearn
    retain: list[Person]  # D_retain
    items: list[Item]  # the evaluation sample
    shape: str | None = None
    model: object = None
    processor: object = None
    state: dict | None = field(default=None, repr=False)  # CPU copy of the weights, to undo training

    @property
    def device(self) -> torch.device:
        return self.session.device

    def encode(self, batch) -> dict:
        """A training batch as Session.encode makes it."""
        enc = encode_training_batch(self.processor, [(e.prompt, e.answer, e.image) for e in batch],
                                    self.profile.model.max_length)
        return {k: v.to(self.device) for k, v in enc.items()}

    def restore(self) -> None:
        """Back to the loaded weights after a training stage (a --shape model's random weights are
        not kept: its throughput does not depend on them)."""
        if self.state is not None:
            self.model.load_state_dict(self.state)
        self.model.eval()


def prepare(profile: Profile, n_items: int, shape: str | None = None) -> Workload:
    """The data: people of the fictional splits, and `n_items` questions (people and MMBench) sampled
    with the profile's seed."""
    session = Session(profile, cache_dir() / "bench")  # data and keys only: the bench writes no units
    splits = session.fictional_splits
    pool = session.people(splits["pool"])
    items = person_items(pool) + session.mmbench_items()
    items = random.Random(profile.seed).sample(items, min(n_items, len(items))) if n_items else []
    return Workload(profile, session, pool, session.people(splits["unlearn"]),
                    session.people(splits["retain"]), items, shape)


def load(w: Workload, keep_state: bool = True) -> Workload:
    """Load the model once. `tiny`: the cached pre-trained base, built (and pre-trained, unless
    pretrain.steps=0) by the session when it is not cached yet."""
    p, s = w.profile, w.session
    if w.shape is not None:
        from repro.bench.shapes import build_shaped_model

        w.model, w.processor = build_shaped_model(p.model, s.all_texts(), w.shape, p.seed, s.device)
    else:
        source = p.model.source
        if source == "tiny":
            cached = base_model_path(s.base_key)
            if not cached.exists():
                if p.pretrain.steps:
                    print(f"pulse-repro bench: no cached base model; pre-training it ({p.pretrain.steps} steps, "
                          f"minutes; --set pretrain.steps=0 skips it)", file=sys.stderr)
                s.processor  # builds, pre-trains and caches the base  # noqa: B018
            source = str(cached)
        w.model, w.processor = load_model(source, p.model.dtype, s.device)
        check_image_tokens(w.model, w.processor)
    if keep_state and w.shape is None:
        w.state = {k: v.detach().to("cpu", copy=True) for k, v in w.model.state_dict().items()}
    w.model.eval()
    return w
