"""The data of a run: the miniature world written on demand (or the sources the profile names), the people
and MMBench questions read from it, the fictional splits, and the texts a tiny model's vocabulary covers."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from repro import distributed
from repro.config import Profile
from repro.data.mllmu import load_people
from repro.data.mmbench import load_mmbench
from repro.data.records import Person
from repro.data.source import resolve_source
from repro.data.splits import build_fictional_splits, build_manifest, data_hash, load_scores, write_manifest
from repro.data.world import MMBENCH_DEV, MMBENCH_TRAIN, write_world
from repro.eval.demonstrations import draw_demonstrations
from repro.eval.items import Demonstration, Item, mmbench_items, person_items
from repro.experiments.keys import world_key
from repro.experiments.store import cache_dir
from repro.hub import DATA_FILES
from repro.model.families import family_named
from repro.model.families.base import Dialect
from repro.train.examples import person_examples


class RunData:
    def __init__(self, profile: Profile, data_dir: Path | None = None):
        self.profile = profile
        self.data_dir = data_dir or cache_dir() / f"world-{world_key(profile)}"

    @property
    def dialect(self) -> Dialect:
        """The text around every question, as the profile's model family writes it."""
        return family_named(self.profile.model.family).dialect

    def _world(self) -> Path:
        with distributed.main_first():  # under a launcher rank 0 writes it, the others read it
            if not (self.data_dir / MMBENCH_DEV).exists():
                write_world(self.data_dir, self.profile.world, self.profile.world_seed)
        return self.data_dir

    def _path(self, spec: str, world_rel: str, kind: str) -> Path:
        # from the hub, the files its loader reads, as `pulse-repro fetch` downloads them
        return self._world() / world_rel if spec == "world" else resolve_source(spec, kind, DATA_FILES[kind])

    @cached_property
    def mllmu_root(self) -> Path:
        return self._path(self.profile.data.mllmu, "MLLMU-Bench", "mllmu")

    @cached_property
    def fictional(self) -> list[Person]:
        return load_people(self.mllmu_root, "Full_Set")

    @cached_property
    def celebrities(self) -> list[Person]:
        return load_people(self.mllmu_root, "Retain_Set")

    @cached_property
    def mmbench_dev(self):
        return load_mmbench(self._path(self.profile.data.mmbench, MMBENCH_DEV, "mmbench"))

    @cached_property
    def mmbench_train(self):
        spec = self.profile.data.mmbench_train
        return load_mmbench(self._path(spec, MMBENCH_TRAIN, "mmbench_train")) if spec else []

    @cached_property
    def source_hash(self) -> str:
        return data_hash([self.mllmu_root])

    @cached_property
    def fictional_splits(self) -> dict:
        return build_fictional_splits(self.fictional, self.profile.splits, self.profile.split_seed)

    def people(self, keys: list[str]) -> list[Person]:
        by_key = {p.key: p for p in self.fictional + self.celebrities}
        return [by_key[k] for k in keys]

    def split(self, name: str) -> list[Person]:
        """The people of a fictional split: "pool", "unlearn" or "retain"."""
        return self.people(self.fictional_splits[name])

    @cached_property
    def demonstrations(self) -> dict[str, tuple[Demonstration, ...]]:
        """The classification demonstrations of eval.shots, per modality: drawn with the run's seed from the
        fictional people outside the pool, so from outside every split the protocol evaluates."""
        pool = set(self.fictional_splits["pool"])
        outside = [p for p in self.fictional if p.key not in pool]
        return draw_demonstrations(outside, self.profile.eval.shots, self.profile.seed)

    def person_items(self, people: list[Person]) -> list[Item]:
        """The classification questions of `people` as the run asks them: eval.shots' demonstrations before a
        fictional person's questions; a celebrity's zero-shot, as MLLMU-Bench's eval.py asks its celebrity set
        (and so the behaviour-based selection reads the base model as it is)."""
        return [it for p in people
                for it in person_items([p], self.dialect, self.demonstrations if p.config == "Full_Set" else None)]

    def mmbench_items(self) -> list[Item]:
        """MMBench dev, every row: the originals (single pass) and their circular copies, scored once for
        both evaluations (repro/data/circular.py)."""
        return mmbench_items(self.mmbench_dev, self.dialect, self.profile.eval.mmbench_template)

    def all_texts(self) -> list[str]:
        """Everything the tiny model will ever read, for its word-level vocabulary."""
        people = self.fictional + self.celebrities
        items = person_items(people, self.dialect) + mmbench_items(self.mmbench_dev + self.mmbench_train, self.dialect)
        texts = [it.prompt for it in items] + [it.context for it in items]
        texts += [o for it in items for o in it.options.values()]
        texts += [e.prompt + e.answer for e in person_examples(people, self.dialect)]
        return texts


def write_split_manifest(profile: Profile, out: Path, scores_file: Path | None, data_dir: Path | None) -> None:
    """`pulse-repro splits`: the split manifest of the profile's data (with `scores_file`, the celebrities'
    selection from their scores)."""
    data = RunData(profile, data_dir)
    scores = load_scores(scores_file) if scores_file else None
    if distributed.is_main():
        write_manifest(build_manifest(profile, data.fictional, scores, data.source_hash), out)
