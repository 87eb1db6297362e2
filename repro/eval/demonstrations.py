"""Few-shot classification (`eval.shots`): the answered questions shown before each asked one.

MLLMU-Bench's eval.py (github.com/YokeYao/MLLMU-Bench at b83832a, evaluate_classification) draws its
demonstration people with an unseeded `random.sample` from the people being evaluated, shows every question of
theirs and leaves those questions out of the score (so the scored set changes from run to run, and two LLaVA
demonstrations of five faces each overflow LLaVA's 4,096-token context). Here the draw is seeded and comes from
fictional people outside every split the protocol evaluates (the Full_Set people not in the fictional pool):
the scored questions stay the same, and the demonstrations are never the people being measured. Each drawn
person gives the first question of the asked question's modality, with its face for a multimodal one, in the
peer's demonstration format (repro/model/prompts.py, `demonstration`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from repro.data.records import Person
from repro.errors import ConfigError
from repro.eval.items import Demonstration
from repro.hashing import key_of

MODALITIES = ("multimodal", "text")


def demonstration_people(candidates: Sequence[Person], shots: int, seed: int) -> list[Person]:
    """`shots` people drawn with `seed` from `candidates` (in key order, so the draw does not depend on file
    order)."""
    if shots < 0:
        raise ConfigError(f"eval.shots must be 0 or more, got {shots}")
    ordered = sorted(candidates, key=lambda p: p.key)
    if shots > len(ordered):
        raise ConfigError(f"eval.shots = {shots} needs {shots} fictional people outside the fictional pool to show "
                          f"as demonstrations; the data has {len(ordered)} (MLLMU-Bench's Full_Set has 500, the "
                          "pool 100): lower eval.shots or splits.fictional_pool")
    rng = random.Random(key_of("demonstrations", seed))
    return rng.sample(ordered, shots)


def _first_of(person: Person, modality: str) -> Demonstration:
    for q in person.questions:
        if q.modality == modality:
            return Demonstration(person.key, q, person.image if modality == "multimodal" else None)
    raise ConfigError(f"demonstration person {person.key} has no {modality} classification question")


def draw_demonstrations(candidates: Sequence[Person], shots: int, seed: int) -> dict[str, tuple[Demonstration, ...]]:
    """Per modality, the demonstrations every asked question of that modality is shown (none when shots = 0)."""
    people = demonstration_people(candidates, shots, seed)
    return {m: tuple(_first_of(p, m) for p in people) for m in MODALITIES} if people else {}
