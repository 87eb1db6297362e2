"""`pulse-repro all --seeds 0 1 2`: the protocol once per seed, into PARENT/seed-N, then the report across
seeds (repro/report/seeds.py).

A seed moves LoRA initialisation, dropout and the data order of fine-tuning and unlearning, and the bootstrap;
the split draw moves with it unless the profile sets `splits.seed` (the paper's splits are one draw). The
world and the tiny base model are held at the profile's own seed (the paper's data and LLaVA's weights are one
draw): they are built once, and shared through the cache and the unit store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from repro.choices import load_profile
from repro.config import Profile


def seed_profiles(profile: str, overrides: Sequence[str], seeds: Sequence[int]) -> list[tuple[int, Profile]]:
    """(seed, profile) per seed, the world and the base model held at the profile's own draw."""
    own = load_profile(profile, overrides)
    held = [f"world.seed={own.world_seed}", f"pretrain.seed={own.base_seed}"]
    return [(seed, load_profile(profile, [*overrides, *held, f"seed={seed}"])) for seed in seeds]


def run_seeds(profile: str, overrides: Sequence[str], seeds: Sequence[int], parent: Path,
              units: Path | None = None) -> int:
    from repro.experiments.runner import run_protocol
    from repro.report.seeds import write_seeds_report

    for seed, seeded in seed_profiles(profile, overrides, seeds):
        print(f"pulse-repro: seed {seed} into {parent / f'seed-{seed}'}")
        run_protocol(seeded, parent / f"seed-{seed}", units)
    write_seeds_report(parent)
    print(f"\nper-seed runs: {parent}/seed-N\nreport across seeds: {parent / 'report'}")
    return 0
